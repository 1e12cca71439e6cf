// Push delivery with real parts: a shared-memory device table, an offline queue and a
// registry in SQLite files of a temporary directory. Only the workers' channels are
// replaced by a recorder (worker_pool_test.cpp runs real channel ends): the pushes a worker
// is handed, hands back, or leaves behind when it dies must all end in the device's queue,
// in order.
#include "master/push_delivery.hpp"

#include "tests/unit/master/push_state.hpp"

#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

namespace iotsocket::master {
namespace {

using protocol::DeviceId;
using Sent = std::pair<std::uint32_t, channel::Message>;

constexpr DeviceId kDevice{1234567890};
const shm::Holder kConnection{.worker = 0, .slot = 7, .conn_generation = 3};

// The workers as push delivery sees them: it records what it is handed.
class RecordingLink : public WorkerLink {
 public:
  bool send(std::uint32_t worker, const channel::Message& m, std::string_view payload) override {
    sent.emplace_back(worker, m);
    payloads.emplace_back(payload);
    return true;
  }
  bool accepts(std::uint32_t) const override { return true; }

  std::vector<Sent> sent;
  std::vector<std::string> payloads;
};

class PushDeliveryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(state_.open("delivery", kDevice));
    router_.emplace(config_, *table_, *offline_, *registry_, events_, 2, link_);
  }
  void TearDown() override {
    router_.reset();
    state_.close();
  }

  // The device logs in on kConnection, as a worker's claim and device_online do.
  void log_in() {
    lease_ = table_->claim(kDevice, kConnection, PeerAddress{}, 0).lease;
    ASSERT_TRUE(lease_);
    router_->device_online(kConnection.worker,
                           channel::Message{.cmd = channel::Cmd::device_online,
                                            .device = kDevice.value, .slot = kConnection.slot,
                                            .conn_generation = kConnection.conn_generation});
  }
  void log_out() { ASSERT_TRUE(lease_.release()); }

  // Logs in and routes `payloads`: each goes to the connection.
  void send_while_connected(std::initializer_list<const char*> payloads) {
    log_in();
    for (const char* p : payloads) router_->route(kDevice, p);
    ASSERT_EQ(sent_.size(), payloads.size());
  }

  // The worker hands push `i` of those sent back (as PushWriter::hand_back does).
  void hand_back(std::size_t i, bool more) {
    channel::Message m = sent_[i].second;
    m.cmd = channel::Cmd::push_returned;
    m.more = more;
    router_->returned(sent_[i].first, m, payloads_[i]);
  }

  std::vector<std::string> queued() { return state_.queued(kDevice); }

  config::Config config_{};
  EventSink events_{EventSinkOptions{}};
  PushState state_;
  std::optional<shm::DeviceTable>& table_ = state_.table;
  std::optional<OfflineQueue>& offline_ = state_.offline;
  std::optional<DeviceRegistry>& registry_ = state_.registry;
  RecordingLink link_;
  std::vector<Sent>& sent_ = link_.sent;
  std::vector<std::string>& payloads_ = link_.payloads;
  std::optional<PushDelivery> router_;
  shm::Lease lease_;  // kConnection's, while logged in
};

TEST_F(PushDeliveryTest, APushForAConnectedDeviceGoesToItsConnection) {
  log_in();
  router_->route(kDevice, "first");
  ASSERT_EQ(sent_.size(), 1u);
  EXPECT_EQ(sent_[0].first, kConnection.worker);
  EXPECT_EQ(sent_[0].second.cmd, channel::Cmd::push);
  EXPECT_EQ(sent_[0].second.slot, kConnection.slot);
  EXPECT_EQ(sent_[0].second.conn_generation, kConnection.conn_generation);
  EXPECT_EQ(payloads_[0], "first");
  EXPECT_TRUE(queued().empty());
}

TEST_F(PushDeliveryTest, AWholeBatchHandedBackWaitsInTheQueueInOrder) {
  ASSERT_NO_FATAL_FAILURE(send_while_connected({"one", "two", "three"}));
  log_out();
  hand_back(0, true);
  hand_back(1, true);
  EXPECT_FALSE(offline_->has(kDevice)) << "a batch is put back whole, at its end";
  hand_back(2, false);
  EXPECT_EQ(queued(), (std::vector<std::string>{"one", "two", "three"}));
}

// The worker handed back the first push of a batch and died before the rest: the master
// requeues the rest (it still had them) and puts back what had come.
TEST_F(PushDeliveryTest, ABatchCutShortByTheWorkersDeathIsPutBackAsFarAsItCame) {
  ASSERT_NO_FATAL_FAILURE(send_while_connected({"one", "two", "three"}));
  log_out();
  hand_back(0, true);
  EXPECT_EQ(router_->unsettled(kConnection.worker), 2u);
  router_->worker_gone(kConnection.worker);
  EXPECT_EQ(queued(), (std::vector<std::string>{"one", "two", "three"}));
}

TEST_F(PushDeliveryTest, PushesRequeuedFromADeadWorkerGoBeforeNewerOnes) {
  ASSERT_NO_FATAL_FAILURE(send_while_connected({"one", "two"}));
  log_out();
  router_->route(kDevice, "three");  // offline now: queued
  router_->worker_gone(kConnection.worker);
  EXPECT_EQ(queued(), (std::vector<std::string>{"one", "two", "three"}));
}

// The master's one call when a worker dies: the device it held is free at once, and what
// the worker had not written waits in the queue for the device's next login.
TEST_F(PushDeliveryTest, AWorkersDeathFreesItsDevicesAndRequeuesWhatItHadNotWritten) {
  ASSERT_NO_FATAL_FAILURE(send_while_connected({"one", "two"}));
  EXPECT_EQ(router_->worker_gone(kConnection.worker), 1u);
  EXPECT_FALSE(table_->holder(kDevice));
  EXPECT_EQ(queued(), (std::vector<std::string>{"one", "two"}));
  EXPECT_EQ(router_->worker_gone(kConnection.worker), 0u) << "nothing left to free";
}

// What the worker settled (written whole) is forgotten; only the rest comes back when it
// dies.
TEST_F(PushDeliveryTest, OnlyThePushesAWorkerHadNotSettledComeBackWhenItDies) {
  ASSERT_NO_FATAL_FAILURE(send_while_connected({"one", "two", "three"}));
  const std::uint64_t written[] = {sent_[0].second.seq, sent_[2].second.seq};
  router_->settled(kConnection.worker, written);
  EXPECT_EQ(router_->unsettled(kConnection.worker), 1u);
  log_out();
  router_->worker_gone(kConnection.worker);
  EXPECT_EQ(queued(), (std::vector<std::string>{"two"}));
  EXPECT_EQ(router_->unsettled(kConnection.worker), 0u);
}

// iotsocketctl devices remove: the device's queued pushes go (within a round of lookups),
// each said as push_expired; another device's stay.
TEST_F(PushDeliveryTest, TheQueuedPushesOfARemovedDeviceAreDropped) {
  constexpr DeviceId kOther{1234567891};
  ASSERT_TRUE(registry_->add(kOther, "router-test-key-0002"));
  router_->route(kDevice, "for the removed one");
  router_->route(kDevice, "and another");
  router_->route(kOther, "for the other one");
  router_->drop_removed(100);  // a round starts: nothing removed yet
  router_->drop_removed(100);
  EXPECT_TRUE(offline_->has(kDevice));
  ASSERT_TRUE(registry_->remove(kDevice));
  router_->drop_removed(100);  // the round started before the removal may miss it
  router_->drop_removed(100);
  router_->drop_removed(100);
  EXPECT_FALSE(offline_->has(kDevice));
  EXPECT_EQ(offline_->count(kOther), 1u);
  EXPECT_EQ(router_->counts().refused, 2u);
}

}  // namespace
}  // namespace iotsocket::master
