// InboundSink across processes: forked writers, each with its own sink, one reader in the
// test process. Children report through their exit code only.
#include <sys/file.h>

#include <map>

#include "tests/unit/worker/inbound_support.hpp"
#include "worker/inbound_sink.hpp"

namespace iotsocket::worker::test {
namespace {

using protocol::DeviceId;
using protocol::Record;

enum Exit { kOk = 0, kOpenFailed = 10, kAppendTimeout = 11, kDrainTimeout = 12 };

// A writer process: `count` records w<writer> s0.. to device writer+1. Stops itself
// (SIGSTOP, holding no lock) after `stop_after` records when that is >= 0.
int run_writer(const InboundOptions& options, int writer, int count, std::size_t max_size,
               int stop_after = -1) {
  auto sink = InboundSink::open(options);
  if (!sink) return kOpenFailed;
  const auto deadline = Clock::now() + 150s;
  for (int seq = 0; seq < count; ++seq) {
    if (seq == stop_after) ::raise(SIGSTOP);
    const std::string payload = make_payload(writer, seq, max_size);
    if (!append_patiently(*sink, DeviceId{static_cast<std::uint64_t>(writer) + 1}, payload, deadline)) {
      return kAppendTimeout;
    }
    sink->flush();
  }
  return pump_until_idle(*sink, deadline) ? kOk : kDrainTimeout;
}

// Checks each record against make_payload and per-writer order; counts per writer.
class Tally {
 public:
  explicit Tally(std::size_t max_size) : max_size_(max_size) {}
  void add(const std::vector<Record>& records) {
    for (const auto& r : records) {
      const auto [writer, seq] = payload_origin(r.payload);
      ASSERT_GE(writer, 0) << "unknown payload";
      EXPECT_EQ(r.device.value, static_cast<std::uint64_t>(writer) + 1);
      int& next = next_[writer];
      ASSERT_EQ(seq, next) << "writer " << writer << " out of order";
      ASSERT_EQ(r.payload, make_payload(writer, seq, max_size_)) << "w" << writer << " s" << seq;
      ++next;
      ++total_;
    }
  }
  int count(int writer) { return next_[writer]; }
  int total() const { return total_; }

 private:
  std::size_t max_size_;
  std::map<int, int> next_;
  int total_ = 0;
};

using InboundProcessesTest = InboundTest;

TEST_F(InboundProcessesTest, FourWritersOfLargeRecordsNeverInterleave) {
  constexpr int kWriters = 4, kEach = 500;
  constexpr std::size_t kMaxSize = 60000;  // > PIPE_BUF: a plain write would not be atomic
  FifoReader reader(fifo_);
  std::vector<std::unique_ptr<Child>> children;
  for (int w = 0; w < kWriters; ++w) {
    children.push_back(std::make_unique<Child>([&, w] {
      reader.close();
      return run_writer(options(), w, kEach, kMaxSize);
    }));
  }
  Tally tally(kMaxSize);
  const auto deadline = Clock::now() + 170s;
  std::size_t since_pause = 0;
  while (tally.total() < kWriters * kEach && Clock::now() < deadline) {
    since_pause += reader.wait_and_read(50ms);
    if (since_pause > (8U << 20)) {  // now and then a slow reader, so the spool is used
      std::this_thread::sleep_for(30ms);
      since_pause = 0;
    }
    tally.add(take_records(reader.data()));
    if (HasFatalFailure()) return;
  }
  for (auto& child : children) EXPECT_EQ(child->wait(Clock::now() + 20s), kOk);
  EXPECT_EQ(tally.total(), kWriters * kEach);
  for (int w = 0; w < kWriters; ++w) EXPECT_EQ(tally.count(w), kEach) << "writer " << w;
  EXPECT_TRUE(reader.data().empty());
}

TEST_F(InboundProcessesTest, SpoolFromAnEarlierRunGoesFirstAfterARestart) {
  constexpr std::size_t kMaxSize = 3000;
  auto old_run = [&] {  // no reader: everything ends in the spool
    auto sink = InboundSink::open(options());
    if (!sink) return kOpenFailed;
    for (int seq = 0; seq < 100; ++seq) {
      if (!sink->append(DeviceId{1}, make_payload(0, seq, kMaxSize))) return kAppendTimeout;
      sink->flush();
    }
    return sink->pending_bytes() == 0 && sink->spooled_bytes() > 0 ? kOk : kDrainTimeout;
  };
  Child first(old_run);
  ASSERT_EQ(first.wait(Clock::now() + 30s), kOk);
  ASSERT_GT(segment_files(), 0U);

  FifoReader reader(fifo_);
  Child second([&] {
    reader.close();
    return run_writer(options(), 1, 100, kMaxSize);
  });
  Tally tally(kMaxSize);
  std::vector<Record> all;
  const auto deadline = Clock::now() + 60s;
  while (all.size() < 200 && Clock::now() < deadline) {
    reader.wait_and_read(50ms);
    auto records = take_records(reader.data());
    all.insert(all.end(), records.begin(), records.end());
  }
  EXPECT_EQ(second.wait(Clock::now() + 20s), kOk);
  ASSERT_EQ(all.size(), 200U);
  for (std::size_t i = 0; i < 200; ++i) {
    EXPECT_EQ(payload_origin(all[i].payload).first, i < 100 ? 0 : 1) << "record " << i;
  }
  tally.add(all);
  EXPECT_EQ(segment_files(), 0U);
}

// A process that dies holding the spool lock does not wedge the others: flock goes with it.
TEST_F(InboundProcessesTest, KilledLockHolderDoesNotWedgeOthers) {
  std::filesystem::create_directory(spool_);
  Child holder([&] {
    const int fd = ::open((spool_ + "/lock").c_str(), O_RDWR | O_CREAT, 0640);
    if (fd < 0 || ::flock(fd, LOCK_EX) != 0) return 1;
    ::raise(SIGSTOP);
    return 0;
  });
  ASSERT_TRUE(holder.wait_stopped(Clock::now() + 10s));

  FifoReader reader(fifo_);
  auto opts = options();
  // open() waits a bounded time for the lock at startup; give it the lock only later.
  Child killer([pid = holder.pid()] {
    std::this_thread::sleep_for(300ms);
    return ::kill(pid, SIGKILL);
  });
  auto sink = InboundSink::open(opts);
  ASSERT_TRUE(sink.has_value()) << sink.error();
  EXPECT_EQ(killer.wait(Clock::now() + 10s), 0);
  holder.kill_and_reap();
  ASSERT_TRUE(sink->append(DeviceId{3}, make_payload(0, 0, 100)));
  ASSERT_TRUE(pump_until_idle(*sink, Clock::now() + 5s, &reader));
  auto records = take_records(reader.data());
  ASSERT_EQ(records.size(), 1U);
  EXPECT_EQ(records[0].payload, make_payload(0, 0, 100));
}

TEST_F(InboundProcessesTest, LockBusyKeepsRecordsInMemoryAndAsksForASoonRetry) {
  FifoReader reader(fifo_);
  auto sink = InboundSink::open(options());
  ASSERT_TRUE(sink.has_value()) << sink.error();
  Child holder([&] {
    reader.close();
    const int fd = ::open((spool_ + "/lock").c_str(), O_RDWR);
    if (fd < 0 || ::flock(fd, LOCK_EX) != 0) return 1;
    ::raise(SIGSTOP);
    return 0;
  });
  ASSERT_TRUE(holder.wait_stopped(Clock::now() + 10s));
  ASSERT_TRUE(sink->append(DeviceId{3}, make_payload(0, 0, 100)));
  sink->flush();
  EXPECT_EQ(sink->retry_in(), InboundSink::kLockRetryDelay);
  EXPECT_GT(sink->pending_bytes(), 0U);
  EXPECT_EQ(reader.read_some(), 0U);
  holder.kill_and_reap();
  ASSERT_TRUE(pump_until_idle(*sink, Clock::now() + 5s, &reader));
  EXPECT_EQ(take_records(reader.data()).size(), 1U);
}

// A writer killed mid-run (between flushes) takes only its in-memory records with it; the
// others finish, and its records that reached the spool or the FIFO arrive whole, in order.
TEST_F(InboundProcessesTest, KilledWriterDoesNotWedgeOthers) {
  constexpr std::size_t kMaxSize = 20000;
  constexpr int kEach = 300;
  FifoReader reader(fifo_);
  auto opts = options();
  opts.memory_limit = 128 << 10;
  std::vector<std::unique_ptr<Child>> children;
  for (int w = 0; w < 3; ++w) {
    children.push_back(std::make_unique<Child>([&, w] {
      reader.close();
      return run_writer(opts, w, kEach, kMaxSize, w == 0 ? 100 : -1);
    }));
  }
  ASSERT_TRUE(children[0]->wait_stopped(Clock::now() + 60s));
  children[0]->kill_and_reap();
  Tally tally(kMaxSize);
  const auto deadline = Clock::now() + 90s;
  while ((tally.count(1) < kEach || tally.count(2) < kEach) && Clock::now() < deadline) {
    reader.wait_and_read(50ms);
    tally.add(take_records(reader.data()));
    if (HasFatalFailure()) return;
  }
  EXPECT_EQ(children[1]->wait(Clock::now() + 20s), kOk);
  EXPECT_EQ(children[2]->wait(Clock::now() + 20s), kOk);
  // Whatever writer 0 left in the spool, a sink of a new process would deliver; here: ours.
  auto sink = InboundSink::open(opts);
  ASSERT_TRUE(sink.has_value()) << sink.error();
  ASSERT_TRUE(pump_until_idle(*sink, Clock::now() + 10s, &reader));
  reader.read_some();
  tally.add(take_records(reader.data()));
  EXPECT_EQ(tally.count(1), kEach);
  EXPECT_EQ(tally.count(2), kEach);
  EXPECT_GE(tally.count(0), 50);  // of the 100 appended before it stopped, most were out
  EXPECT_LE(tally.count(0), 100);
  EXPECT_TRUE(reader.data().empty());
}

}  // namespace
}  // namespace iotsocket::worker::test
