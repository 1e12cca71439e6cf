// The worker pool with real channel ends and no processes: the spawn function keeps the
// worker's end, and the test plays the worker on it (ready, hand-backs, settles, death).
// The last tests wire the pool to push delivery with a real device table, offline queue
// and registry: what a worker had not settled when it died must be back in its device's
// queue, in order.
#include "master/worker_pool.hpp"

#include <signal.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "master/push_delivery.hpp"
#include "tests/unit/master/push_state.hpp"

namespace iotsocket::master {
namespace {

using std::chrono::steady_clock;
using namespace std::chrono_literals;

constexpr std::uint64_t kTag = 1ULL << 60;
constexpr int kKilled = SIGKILL;  // a wait status: killed by SIGKILL

// What the pool passes on, in order, as "command:worker" lines.
class RecordingEvents : public WorkerEvents {
 public:
  void ready(std::uint32_t w) override { said("ready", w); }
  void connection_closed(std::uint32_t w, const IpKey&, bool) override { said("closed", w); }
  void device_online(std::uint32_t w, const channel::Message&) override { said("online", w); }
  void push_returned(std::uint32_t w, const channel::Message&, std::string payload) override {
    said("returned " + payload, w);
  }
  void pushes_settled(std::uint32_t w, std::span<const std::uint64_t> seqs) override {
    said("settled " + std::to_string(seqs.size()), w);
  }
  void fence_passed(std::uint32_t w, const channel::Message&) override { said("fence", w); }
  void reloaded(std::uint32_t w, const std::string&) override { said("reloaded", w); }
  void gone(std::uint32_t w, const WorkerProcess& p, int) override {
    said("gone with " + std::to_string(p.connections) + " connections", w);
  }

  std::vector<std::string> heard;

 private:
  void said(const std::string& what, std::uint32_t worker) {
    heard.push_back(what + ":" + std::to_string(worker));
  }
};

class WorkerPoolTest : public ::testing::Test {
 protected:
  WorkerPoolTest()
      : epoll_(::epoll_create1(EPOLL_CLOEXEC)),
        pool_(2, epoll_.get(), kTag, events_,
              [this](std::uint32_t worker, std::uint32_t generation, Fd worker_end) {
                ends_[worker] = std::move(worker_end);
                return static_cast<pid_t>(100'000 + worker * 100 + generation);
              }) {}

  pid_t pid_of(std::uint32_t worker) const { return pool_.at(worker).pid; }

  // The fake worker `worker` says `m` (with its current generation).
  void worker_says(std::uint32_t worker, channel::Message m, std::string_view payload = {}) {
    m.generation = pool_.at(worker).generation;
    ASSERT_EQ(channel::send(ends_[worker].get(), m, payload), Io::ok);
  }
  void start_ready(std::uint32_t worker) {
    ASSERT_TRUE(pool_.spawn(worker));
    worker_says(worker, channel::Message{.cmd = channel::Cmd::ready});
    pool_.on_channel(worker, EPOLLIN, heard_);
    ASSERT_EQ(pool_.at(worker).state, WorkerState::ready);
  }
  // Everything the master sent to fake worker `worker` so far.
  std::vector<channel::Received> received_by(std::uint32_t worker) {
    std::vector<channel::Received> out;
    for (channel::Received r = channel::receive(ends_[worker].get()); r.io == Io::ok;
         r = channel::receive(ends_[worker].get())) {
      out.push_back(std::move(r));
    }
    return out;
  }

  EventSink events_{EventSinkOptions{}};
  Fd epoll_;
  std::map<std::uint32_t, Fd> ends_;
  WorkerPool pool_;
  RecordingEvents heard_;
};

TEST_F(WorkerPoolTest, AReadyWorkerTakesConnectionsAndTheLeastLoadedGetsTheNext) {
  start_ready(0);
  start_ready(1);
  Fd a(::dup(0)), b(::dup(0));
  ASSERT_EQ(pool_.hand_over(*pool_.least_loaded(), a.get(), PeerAddress{}), Io::ok);
  ASSERT_EQ(pool_.hand_over(*pool_.least_loaded(), b.get(), PeerAddress{}), Io::ok);
  EXPECT_EQ(pool_.at(0).connections, 1u);
  EXPECT_EQ(pool_.at(1).connections, 1u);
  EXPECT_EQ(received_by(0).size(), 1u);
  worker_says(0, channel::Message{.cmd = channel::Cmd::connection_closed});
  pool_.on_channel(0, EPOLLIN, heard_);
  EXPECT_EQ(pool_.at(0).connections, 0u);
  EXPECT_EQ(heard_.heard.back(), "closed:0");
}

// SIGCHLD may come before the dead worker's last messages are read: what it handed back and
// settled still counts, and reaches its owners before the death does; what it said about
// itself (ready) no longer does.
TEST_F(WorkerPoolTest, WhatADeadWorkerSentIsPassedOnBeforeItsDeath) {
  start_ready(0);
  worker_says(0, channel::Message{.cmd = channel::Cmd::push_returned, .seq = 1}, "back");
  const std::uint64_t seqs[] = {2, 3};
  worker_says(0, channel::Message{.cmd = channel::Cmd::pushes_settled}, channel::encode_settled(seqs));
  worker_says(0, channel::Message{.cmd = channel::Cmd::ready});
  ends_[0].reset();  // it dies
  heard_.heard.clear();
  pool_.exited(pid_of(0), kKilled, heard_);
  EXPECT_EQ(heard_.heard, (std::vector<std::string>{"returned back:0", "settled 2:0",
                                                    "gone with 0 connections:0"}));
  EXPECT_EQ(pool_.at(0).state, WorkerState::exited);
  EXPECT_FALSE(pool_.accepts(0));
}

TEST_F(WorkerPoolTest, AWorkerThatDiesYoungIsRespawnedAfterTheCrashLoopDelayWithANewGeneration) {
  start_ready(0);
  start_ready(1);
  EXPECT_FALSE(pool_.next_respawn());
  const std::uint32_t first = pool_.at(0).generation;
  pool_.exited(pid_of(0), kKilled, heard_);
  const auto now = steady_clock::now();
  ASSERT_TRUE(pool_.next_respawn());
  EXPECT_GE(*pool_.next_respawn(), now + WorkerPool::kRespawnDelayAfterCrashLoop - 100ms);
  pool_.respawn_due(now);
  EXPECT_EQ(pool_.at(0).state, WorkerState::exited);
  pool_.respawn_due(now + WorkerPool::kRespawnDelayAfterCrashLoop);
  EXPECT_EQ(pool_.at(0).state, WorkerState::starting);
  EXPECT_EQ(pool_.at(0).generation, first + 1);
  EXPECT_EQ(pool_.restarts(), 1u);
  // The new worker's channel is a new one; a message of the old generation on it is not
  // the new worker's.
  worker_says(0, channel::Message{.cmd = channel::Cmd::ready});
  channel::Message stale{.cmd = channel::Cmd::ready};
  stale.generation = first;
  ASSERT_EQ(channel::send(ends_[0].get(), stale), Io::ok);
  heard_.heard.clear();
  pool_.on_channel(0, EPOLLIN, heard_);
  EXPECT_EQ(heard_.heard, std::vector<std::string>{"ready:0"});
}

TEST_F(WorkerPoolTest, WhileStoppingAWorkerIsNotRespawnedAndADrainedOneGetsFinishLast) {
  start_ready(0);
  pool_.stop();
  ASSERT_TRUE(pool_.send(0, channel::Message{.cmd = channel::Cmd::push, .seq = 9}, "still going"));
  worker_says(0, channel::Message{.cmd = channel::Cmd::drained});
  pool_.on_channel(0, EPOLLIN, heard_);
  EXPECT_EQ(pool_.at(0).state, WorkerState::finishing);
  EXPECT_FALSE(pool_.send(0, channel::Message{.cmd = channel::Cmd::push}, "too late"));
  const auto got = received_by(0);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].message.cmd, channel::Cmd::push);
  EXPECT_EQ(got[1].message.cmd, channel::Cmd::finish);
  pool_.exited(pid_of(0), 0, heard_);
  EXPECT_FALSE(pool_.next_respawn());
  EXPECT_EQ(pool_.restarts(), 0u);
}

TEST_F(WorkerPoolTest, WhatFindsAChannelFullWaitsAndCountsUntilItIsSent) {
  start_ready(0);
  const std::string payload(30'000, 'p');
  std::size_t sent = 0;
  while (pool_.waiting_bytes() == 0 && sent < 10'000) {
    ASSERT_TRUE(pool_.send(0, channel::Message{.cmd = channel::Cmd::push, .seq = ++sent}, payload));
  }
  ASSERT_GT(pool_.waiting_bytes(), payload.size());
  ASSERT_TRUE(pool_.send(0, channel::Message{.cmd = channel::Cmd::push, .seq = ++sent}, payload));
  std::size_t got = 0;
  for (int rounds = 0; got < sent && rounds < 1000; ++rounds) {
    got += received_by(0).size();
    pool_.on_channel(0, EPOLLOUT, heard_);
  }
  EXPECT_EQ(got, sent);
  EXPECT_EQ(pool_.waiting_bytes(), 0u);
}

// ---- with push delivery ----------------------------------------------------------------

constexpr protocol::DeviceId kDevice{1234567890};

// The master's wiring of the two, as master.cpp does it.
class DeliveryEvents : public RecordingEvents {
 public:
  explicit DeliveryEvents(PushDelivery& delivery) : delivery_(delivery) {}
  void push_returned(std::uint32_t w, const channel::Message& m, std::string payload) override {
    delivery_.returned(w, m, std::move(payload));
  }
  void pushes_settled(std::uint32_t w, std::span<const std::uint64_t> seqs) override {
    delivery_.settled(w, seqs);
  }
  void gone(std::uint32_t w, const WorkerProcess&, int) override { delivery_.worker_gone(w); }

 private:
  PushDelivery& delivery_;
};

class PoolWithDeliveryTest : public WorkerPoolTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(state_.open("pool", kDevice));
    delivery_.emplace(config_, *table_, *state_.offline, *state_.registry, events_, pool_.size(), pool_);
    wiring_.emplace(*delivery_);
  }
  void TearDown() override {
    wiring_.reset();
    delivery_.reset();
    state_.close();
  }
  std::vector<std::string> queued() { return state_.queued(kDevice); }

  config::Config config_{};
  PushState state_;
  std::optional<shm::DeviceTable>& table_ = state_.table;
  std::optional<PushDelivery> delivery_;
  std::optional<DeliveryEvents> wiring_;
};

// Pushes in the channel (never read), in the worker's memory (read, not written) and
// written (settled) when the worker is killed: the first two kinds go back to the device's
// queue in their order, the written one does not come again.
TEST_F(PoolWithDeliveryTest, WhatAKilledWorkerHadNotSettledIsBackInTheDevicesQueueInOrder) {
  start_ready(0);
  const shm::Holder holder{.worker = 0, .slot = 3, .conn_generation = 1};
  ASSERT_EQ(table_->claim(kDevice, holder, PeerAddress{}, 0).status, shm::ClaimStatus::claimed);
  for (const char* p : {"one", "two", "three", "four"}) delivery_->route(kDevice, p);
  ASSERT_EQ(delivery_->unsettled(0), 4u);
  // The worker reads two of them and writes the first whole; the rest stay in the channel.
  channel::Received first = channel::receive(ends_[0].get());
  channel::Received second = channel::receive(ends_[0].get());
  ASSERT_EQ(first.payload, "one");
  ASSERT_EQ(second.payload, "two");
  const std::uint64_t written[] = {first.message.seq};
  worker_says(0, channel::Message{.cmd = channel::Cmd::pushes_settled}, channel::encode_settled(written));
  ends_[0].reset();  // killed
  pool_.exited(pid_of(0), kKilled, *wiring_);
  EXPECT_EQ(delivery_->unsettled(0), 0u);
  EXPECT_FALSE(table_->holder(kDevice));
  EXPECT_EQ(queued(), (std::vector<std::string>{"two", "three", "four"}));
}

// A worker that handed back the first push of a closing connection's batch and died before
// the rest: the batch is whole again in the queue.
TEST_F(PoolWithDeliveryTest, ABatchCutShortByTheWorkersDeathIsWholeInTheQueue) {
  start_ready(0);
  const shm::Holder holder{.worker = 0, .slot = 3, .conn_generation = 1};
  shm::Lease lease = table_->claim(kDevice, holder, PeerAddress{}, 0).lease;
  ASSERT_TRUE(lease);
  for (const char* p : {"one", "two", "three"}) delivery_->route(kDevice, p);
  channel::Received first = channel::receive(ends_[0].get());
  ASSERT_TRUE(lease.release());  // the connection closes
  channel::Message back = first.message;
  back.cmd = channel::Cmd::push_returned;
  back.more = true;
  worker_says(0, back, first.payload);
  ends_[0].reset();
  pool_.exited(pid_of(0), kKilled, *wiring_);
  EXPECT_EQ(queued(), (std::vector<std::string>{"one", "two", "three"}));
}

}  // namespace
}  // namespace iotsocket::master
