// InboundSink in one process: a real FIFO, a real spool directory, the reader on a
// non-blocking descriptor in the same thread.
#include "worker/inbound_sink.hpp"

#include <fstream>

#include "tests/unit/worker/inbound_support.hpp"

namespace iotsocket::worker::test {
namespace {

using protocol::DeviceId;
using protocol::Record;

InboundSink open_sink(const InboundOptions& options) {
  auto sink = InboundSink::open(options);
  EXPECT_TRUE(sink.has_value()) << (sink ? "" : sink.error());
  if (!sink) std::abort();
  return std::move(*sink);
}

// open() fails; the message names `path` and holds `cause`.
void expect_open_error(const InboundOptions& options, const std::string& path,
                       std::string_view cause = {}) {
  auto sink = InboundSink::open(options);
  ASSERT_FALSE(sink.has_value());
  EXPECT_NE(sink.error().find(path), std::string::npos) << sink.error();
  EXPECT_NE(sink.error().find(cause), std::string::npos) << sink.error();
}

// Appends records w0 s0.. s<count-1>, flushing after each; no reader needed.
void append_all(InboundSink& sink, int count, std::size_t max_size, int writer = 0) {
  const auto deadline = Clock::now() + 20s;
  for (int seq = 0; seq < count; ++seq) {
    ASSERT_TRUE(append_patiently(sink, DeviceId{7}, make_payload(writer, seq, max_size), deadline));
    sink.flush();
  }
}

// The records in `data` are w<writer> s<first>.. in order, each byte as made.
void expect_sequence(const std::vector<Record>& records, int writer, int first, int count,
                     std::size_t max_size) {
  ASSERT_EQ(records.size(), static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i) {
    ASSERT_EQ(records[static_cast<std::size_t>(i)].payload, make_payload(writer, first + i, max_size))
        << "record " << i;
  }
}

using InboundSinkTest = InboundTest;

TEST_F(InboundSinkTest, DeliversOneRecordByteExact) {
  FifoReader reader(fifo_);
  ASSERT_TRUE(reader.is_open());
  auto sink = open_sink(options());
  ASSERT_TRUE(sink.append(DeviceId{42}, "a\nb\rc\\d end"));
  const std::string expected = "0000000042 a\\nb\\rc\\\\d end\n";
  EXPECT_EQ(sink.pending_bytes(), expected.size());
  ASSERT_TRUE(pump_until_idle(sink, Clock::now() + 5s, &reader));
  EXPECT_EQ(reader.data(), expected);
  EXPECT_EQ(sink.retry_in(), std::nullopt);
  EXPECT_EQ(sink.writable_fd(), -1);
  EXPECT_EQ(segment_files(), 0U);
}

TEST_F(InboundSinkTest, SpoolsWithoutReaderThenDeliversInOrderAndDeletesSegments) {
  auto opts = options();
  opts.segment_size = 16 << 10;  // several segments
  auto sink = open_sink(opts);
  append_all(sink, 200, 2000);
  EXPECT_EQ(sink.pending_bytes(), 0U);
  EXPECT_GT(sink.spooled_bytes(), 100'000U);
  EXPECT_FALSE(sink.idle());
  EXPECT_EQ(sink.writable_fd(), -1);
  ASSERT_TRUE(sink.retry_in().has_value());
  EXPECT_LE(*sink.retry_in(), InboundSink::kReopenDelay);
  EXPECT_GT(segment_files(), 3U);

  FifoReader reader(fifo_);
  ASSERT_TRUE(pump_until_idle(sink, Clock::now() + 10s, &reader));
  expect_sequence(take_records(reader.data()), 0, 0, 200, 2000);
  EXPECT_TRUE(reader.data().empty());
  EXPECT_EQ(sink.spooled_bytes(), 0U);
  EXPECT_EQ(segment_files(), 0U);
}

TEST_F(InboundSinkTest, SlowReaderLosesNothing) {
  FifoReader reader(fifo_);
  auto opts = options();
  opts.memory_limit = 64 << 10;
  opts.spool_limit = 256 << 10;  // so back-pressure, not only the spool, comes into play
  auto sink = open_sink(opts);
  const auto deadline = Clock::now() + 60s;
  std::vector<Record> got;
  bool pushed_back = false;
  for (int seq = 0; seq < 300; ++seq) {
    const std::string payload = make_payload(0, seq, 20000);
    while (!sink.append(DeviceId{7}, payload)) {
      pushed_back = true;
      ASSERT_LT(Clock::now(), deadline);
      step(sink, 1ms);
      reader.read_some(4096);  // a slow reader: small bites
      std::this_thread::sleep_for(200us);
    }
    sink.flush();
    reader.read_some(4096);
  }
  // Once the sink is idle everything is in the pipe; read it to the end.
  ASSERT_TRUE(pump_until_idle(sink, deadline, &reader));
  reader.read_some();
  EXPECT_TRUE(pushed_back);
  expect_sequence(take_records(reader.data()), 0, 0, 300, 20000);
}

TEST_F(InboundSinkTest, RecordsOfABusyPipeWaitInTheSpoolWithoutOvertaking) {
  FifoReader reader(fifo_);
  auto sink = open_sink(options());
  append_all(sink, 60, 60000);  // about 1.8 MB: more than the pipe holds
  EXPECT_GT(sink.spooled_bytes(), 0U);
  EXPECT_GE(sink.writable_fd(), 0);  // the pipe is full: wait until it is writable
  ASSERT_TRUE(pump_until_idle(sink, Clock::now() + 20s, &reader));
  expect_sequence(take_records(reader.data()), 0, 0, 60, 60000);
}

// The reader read everything in the pipe, ending inside a record, and left: that record
// reaches the next reader whole, then the rest; nothing twice, nothing lost.
TEST_F(InboundSinkTest, ReaderThatLeftInsideARecordGetsNoHalfRecordNextTime) {
  auto reader = std::make_unique<FifoReader>(fifo_);
  auto sink = open_sink(options());
  constexpr int kCount = 40;
  for (int seq = 0; seq < kCount; ++seq) {
    ASSERT_TRUE(sink.append(DeviceId{7}, make_payload(0, seq, 60000)));
  }
  sink.flush();  // fills the pipe; the last write is cut inside a record
  ASSERT_GT(sink.spooled_bytes(), 0U);
  reader->read_some();
  std::string first = reader->data();
  ASSERT_FALSE(first.empty());
  ASSERT_NE(first.back(), '\n') << "the pipe should have cut a record";
  reader.reset();

  sink.flush();  // EPIPE: nobody reads
  EXPECT_EQ(sink.writable_fd(), -1);
  ASSERT_TRUE(sink.retry_in().has_value());

  FifoReader next(fifo_);
  ASSERT_TRUE(pump_until_idle(sink, Clock::now() + 20s, &next));
  const std::size_t cut = first.rfind('\n') + 1;
  const std::string partial = first.substr(cut);
  first.erase(cut);
  auto old_records = take_records(first);
  auto new_records = take_records(next.data());
  EXPECT_TRUE(next.data().empty());
  ASSERT_FALSE(new_records.empty());
  std::string resent;
  protocol::append_record(resent, DeviceId{7}, new_records.front().payload);
  EXPECT_TRUE(resent.starts_with(partial)) << "the first record of the next reader is the cut one";
  ASSERT_EQ(old_records.size() + new_records.size(), static_cast<std::size_t>(kCount));
  old_records.insert(old_records.end(), new_records.begin(), new_records.end());
  expect_sequence(old_records, 0, 0, kCount, 60000);
}

// The reader left without reading: the pipe keeps its bytes (the sink keeps its write
// end), and the next reader gets them, then the spool, as one unbroken stream.
TEST_F(InboundSinkTest, BytesLeftInThePipeReachTheNextReader) {
  auto reader = std::make_unique<FifoReader>(fifo_);
  auto sink = open_sink(options());
  append_all(sink, 40, 60000);
  ASSERT_GT(sink.spooled_bytes(), 0U);
  reader.reset();
  sink.flush();  // EPIPE
  EXPECT_EQ(sink.writable_fd(), -1);
  FifoReader next(fifo_);
  ASSERT_TRUE(pump_until_idle(sink, Clock::now() + 20s, &next));
  expect_sequence(take_records(next.data()), 0, 0, 40, 60000);
}

TEST_F(InboundSinkTest, FullSpoolPushesBackUntilAReaderDrainsIt) {
  auto opts = options();
  opts.memory_limit = 16 << 10;
  opts.spool_limit = 32 << 10;
  auto sink = open_sink(opts);
  int appended = 0;
  while (appended < 1000 && sink.append(DeviceId{7}, make_payload(0, appended, 1000))) {
    ++appended;
    sink.flush();
  }
  ASSERT_LT(appended, 1000) << "append never refused";
  EXPECT_FALSE(sink.has_room(1000));
  EXPECT_GT(sink.pending_bytes(), 8U << 10);
  EXPECT_LE(sink.spooled_bytes(), opts.spool_limit);

  FifoReader reader(fifo_);
  const auto deadline = Clock::now() + 10s;
  while (!sink.has_room(1000)) {
    ASSERT_LT(Clock::now(), deadline);
    step(sink, 5ms);
    reader.read_some();
  }
  ASSERT_TRUE(pump_until_idle(sink, deadline, &reader));
  expect_sequence(take_records(reader.data()), 0, 0, appended, 1000);
}

TEST_F(InboundSinkTest, HasRoomAndAppendAgreeOnTheMemoryBound) {
  auto opts = options();
  opts.memory_limit = 1000;
  auto sink = open_sink(opts);  // never flushed: all stays in memory
  EXPECT_TRUE(sink.has_room(60000));      // an empty batch takes any one record
  EXPECT_TRUE(sink.append(DeviceId{1}, std::string(2000, 'a')));  // over the bound: first one
  EXPECT_FALSE(sink.has_room(5));
  EXPECT_FALSE(sink.append(DeviceId{1}, "hello"));
  EXPECT_EQ(sink.pending_bytes(), 2012U);
}

TEST_F(InboundSinkTest, OpenRefusesAMissingFifo) {
  auto opts = options();
  opts.fifo_path = dir_ + "/nope.fifo";
  expect_open_error(opts, opts.fifo_path, "No such file");
}

TEST_F(InboundSinkTest, OpenRefusesARegularFile) {
  auto opts = options();
  opts.fifo_path = dir_ + "/plain";
  std::ofstream(opts.fifo_path) << "x";
  expect_open_error(opts, opts.fifo_path, "not a FIFO");
}

TEST_F(InboundSinkTest, OpenRefusesAnUnusableSpoolDirectory) {
  // Tests may run as root, which ignores permissions: a path under a file is unusable for all.
  std::ofstream(dir_ + "/file") << "x";
  auto opts = options();
  opts.spool_dir = dir_ + "/file/spool";
  expect_open_error(opts, opts.spool_dir, "Not a directory");
}

TEST_F(InboundSinkTest, OpenRefusesACorruptStateFile) {
  { auto sink = open_sink(options()); }
  const std::string state = spool_ + "/state";
  {
    std::fstream f(state, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(20);
    f.put('\x55');
  }
  expect_open_error(options(), state, "checksum");
}

TEST_F(InboundSinkTest, OpenRefusesAStateFileOfAnotherKind) {
  std::filesystem::create_directory(spool_);
  std::ofstream(spool_ + "/state") << "this is not a spool state";
  expect_open_error(options(), spool_ + "/state");
}

TEST_F(InboundSinkTest, OpenRefusesSegmentsWithoutAState) {
  std::filesystem::create_directory(spool_);
  std::ofstream(spool_ + "/seg-0000000000000001") << "0000000001 hello\n";
  expect_open_error(options(), "seg-0000000000000001");
}

TEST_F(InboundSinkTest, OpenRefusesAStateWhoseSegmentIsGone) {
  {
    auto sink = open_sink(options());
    append_all(sink, 5, 100);
  }
  std::filesystem::remove(spool_ + "/seg-0000000000000001");
  expect_open_error(options(), "seg-0000000000000001");
}

}  // namespace
}  // namespace iotsocket::worker::test
