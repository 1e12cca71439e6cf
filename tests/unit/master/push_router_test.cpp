// The push router with real parts: a shared-memory device table, an offline queue and a
// registry in SQLite files of a temporary directory. Only the workers' channels are
// replaced by a recorder (the e2e tests run the real ones): the pushes a worker is handed,
// hands back, or leaves behind when it dies must all end in the device's queue, in order.
#include "master/push_router.hpp"

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

class PushRouterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char pattern[] = "/tmp/iotsocket-router-XXXXXX";
    ASSERT_NE(::mkdtemp(pattern), nullptr);
    dir_ = pattern;
    shm_name_ = "iotsocket-router-test-" + std::to_string(::getpid());
    auto table = shm::DeviceTable::create(shm_name_, 64, 2);
    ASSERT_TRUE(table) << table.error();
    table_.emplace(std::move(*table));
    auto offline = OfflineQueue::open(OfflineOptions{.path = dir_ + "/offline.db"});
    ASSERT_TRUE(offline) << offline.error();
    offline_.emplace(std::move(*offline));
    auto registry = DeviceRegistry::open(dir_ + "/devices.db", DeviceRegistry::Mode::read_write);
    ASSERT_TRUE(registry) << registry.error();
    registry_.emplace(std::move(*registry));
    ASSERT_TRUE(registry_->add(kDevice, "router-test-key-0001"));
    router_.emplace(config_, *table_, *offline_, *registry_, events_,
                    [this](std::uint32_t worker, const channel::Message& m, std::string payload) {
                      sent_.emplace_back(worker, m);
                      payloads_.push_back(std::move(payload));
                      return true;
                    });
  }
  void TearDown() override {
    router_.reset();
    if (table_) table_->unlink();
    table_.reset();
    std::filesystem::remove_all(dir_);
  }

  // The device logs in on kConnection, as a worker's claim and device_online do.
  void log_in() {
    ASSERT_EQ(table_->claim(kDevice, kConnection, PeerAddress{}, 0).status,
              shm::ClaimStatus::claimed);
    router_->device_online(kConnection.worker,
                           channel::Message{.cmd = channel::Cmd::device_online,
                                            .device = kDevice.value, .slot = kConnection.slot,
                                            .conn_generation = kConnection.conn_generation});
  }
  void log_out() { ASSERT_TRUE(table_->release(kDevice, kConnection)); }

  // Logs in and routes `payloads`: each goes to the connection.
  void send_while_connected(std::initializer_list<const char*> payloads) {
    log_in();
    for (const char* p : payloads) router_->route(kDevice, p);
    ASSERT_EQ(sent_.size(), payloads.size());
  }

  // What the master still held when the worker died: pushes `from` .. end of those sent.
  std::vector<std::pair<channel::Message, std::string>> unsettled_from(std::size_t from) {
    std::vector<std::pair<channel::Message, std::string>> out;
    for (std::size_t i = from; i < sent_.size(); ++i) {
      out.emplace_back(sent_[i].second, payloads_[i]);
    }
    return out;
  }

  // The worker hands push `i` of those sent back (as return_unsent does).
  void hand_back(std::size_t i, bool more) {
    channel::Message m = sent_[i].second;
    m.cmd = channel::Cmd::push_returned;
    m.more = more;
    router_->returned(sent_[i].first, m, payloads_[i]);
  }

  std::vector<std::string> queued() {
    auto taken = offline_->take(kDevice, std::chrono::system_clock::now());
    EXPECT_TRUE(taken) << taken.error();
    std::vector<std::string> out;
    for (const QueuedPush& p : taken->pushes) out.push_back(p.payload);
    return out;
  }

  config::Config config_{};
  EventSink events_{EventSinkOptions{}};
  std::string dir_;
  std::string shm_name_;
  std::optional<shm::DeviceTable> table_;
  std::optional<OfflineQueue> offline_;
  std::optional<DeviceRegistry> registry_;
  std::optional<PushRouter> router_;
  std::vector<Sent> sent_;
  std::vector<std::string> payloads_;
};

TEST_F(PushRouterTest, APushForAConnectedDeviceGoesToItsConnection) {
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

TEST_F(PushRouterTest, AWholeBatchHandedBackWaitsInTheQueueInOrder) {
  ASSERT_NO_FATAL_FAILURE(send_while_connected({"one", "two", "three"}));
  log_out();
  hand_back(0, true);
  hand_back(1, true);
  EXPECT_FALSE(offline_->has(kDevice)) << "a batch is put back whole, at its end";
  hand_back(2, false);
  EXPECT_EQ(queued(), (std::vector<std::string>{"one", "two", "three"}));
}

// The worker handed back the first push of a batch and died before the rest: the master
// requeues the rest (it still had them), and the router puts back what had come.
TEST_F(PushRouterTest, ABatchCutShortByTheWorkersDeathIsPutBackAsFarAsItCame) {
  ASSERT_NO_FATAL_FAILURE(send_while_connected({"one", "two", "three"}));
  log_out();
  hand_back(0, true);
  router_->requeue(unsettled_from(1));
  router_->worker_gone(kConnection.worker);
  EXPECT_EQ(queued(), (std::vector<std::string>{"one", "two", "three"}));
}

TEST_F(PushRouterTest, PushesRequeuedFromADeadWorkerGoBeforeNewerOnes) {
  ASSERT_NO_FATAL_FAILURE(send_while_connected({"one", "two"}));
  log_out();
  router_->route(kDevice, "three");  // offline now: queued
  router_->requeue(unsettled_from(0));
  router_->worker_gone(kConnection.worker);
  EXPECT_EQ(queued(), (std::vector<std::string>{"one", "two", "three"}));
}

}  // namespace
}  // namespace iotsocket::master
