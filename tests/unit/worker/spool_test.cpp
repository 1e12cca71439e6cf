// Spool on its own: record boundaries, the write-ahead stage, rotation and restarts.
#include "worker/spool.hpp"

#include "tests/unit/worker/inbound_support.hpp"

namespace iotsocket::worker::test {
namespace {

using SpoolTest = InboundTest;

Spool open_spool(const SpoolOptions& options) {
  auto spool = Spool::open(options);
  EXPECT_TRUE(spool.has_value()) << (spool ? "" : spool.error());
  if (!spool) std::abort();
  return std::move(*spool);
}

// Everything in the spool, drained.
std::string drain(Spool& spool) {
  std::string out;
  EXPECT_EQ(spool.lock(), Spool::Lock::held);
  for (int i = 0; i < 1000 && !spool.empty(); ++i) {
    std::string_view chunk;
    EXPECT_TRUE(spool.peek(7, chunk));  // odd sizes: cursor inside records
    out.append(chunk);
    EXPECT_TRUE(spool.consume(chunk.size()));
  }
  spool.unlock();
  return out;
}

TEST(RecordBoundaries, FindStartsEndsAndWholeRuns) {
  const std::string_view r = "aa\nbbb\nc\n";
  struct Row {
    std::size_t n, start, end, whole;
  };
  // n: a byte position (record_start, record_end) and a size bound (whole_records).
  constexpr Row kRows[] = {{0, 0, 0, 0}, {1, 0, 3, 0}, {2, 0, 3, 0}, {3, 3, 3, 3},
                           {4, 3, 7, 3}, {5, 3, 7, 3}, {7, 7, 7, 7}, {8, 7, 9, 7}};
  for (const auto& row : kRows) {
    EXPECT_EQ(record_start(r, row.n), row.start) << row.n;
    EXPECT_EQ(record_end(r, row.n), row.end) << row.n;
    EXPECT_EQ(whole_records(r, row.n), row.whole) << row.n;
  }
  EXPECT_EQ(whole_records(r, 100), 9U);
}

TEST_F(SpoolTest, UncommittedStageIsNotDataAfterARestart) {
  {
    auto spool = open_spool({.dir = spool_});
    ASSERT_EQ(spool.lock(), Spool::Lock::held);
    ASSERT_TRUE(spool.append("one\n"));
    ASSERT_TRUE(spool.stage("garbage of a writer that died\n"));  // never committed
    spool.unlock();
  }
  auto spool = open_spool({.dir = spool_});
  EXPECT_EQ(spool.bytes(), 4U);
  ASSERT_EQ(spool.lock(), Spool::Lock::held);
  ASSERT_TRUE(spool.append("two\n"));  // overwrites the garbage
  spool.unlock();
  EXPECT_EQ(drain(spool), "one\ntwo\n");
}

TEST_F(SpoolTest, RotatesSegmentsAndReadsThemInOrder) {
  auto spool = open_spool({.dir = spool_, .segment_size = 64});
  std::string expected;
  ASSERT_EQ(spool.lock(), Spool::Lock::held);
  for (int i = 0; i < 50; ++i) {
    const std::string record = "record number " + std::to_string(i) + "\n";
    ASSERT_TRUE(spool.stage(record + "junk"));  // a longer stage, then a shorter commit
    ASSERT_TRUE(spool.commit(record, 0));
    expected += record;
  }
  spool.unlock();
  EXPECT_GT(segment_files(), 10U);
  auto reopened = open_spool({.dir = spool_, .segment_size = 64});
  EXPECT_EQ(reopened.bytes(), expected.size());
  EXPECT_EQ(drain(reopened), expected);
  EXPECT_EQ(segment_files(), 0U);
}

TEST_F(SpoolTest, CommitWithSentBytesStartsInsideTheCutRecord) {
  auto spool = open_spool({.dir = spool_});
  ASSERT_EQ(spool.lock(), Spool::Lock::held);
  ASSERT_TRUE(spool.stage("first\nsecond\nthird\n"));
  ASSERT_TRUE(spool.commit("first\nsecond\n", 8));  // "first\nse" went to the FIFO
  EXPECT_EQ(spool.bytes(), 5U);
  EXPECT_EQ(spool.record_sent(), 2U);
  ASSERT_TRUE(spool.rewind_cut_record());
  EXPECT_EQ(spool.bytes(), 7U);
  EXPECT_EQ(spool.record_sent(), 0U);
  spool.unlock();
  EXPECT_EQ(drain(spool), "second\n");
}

TEST_F(SpoolTest, CursorTracksTheRecordStartWhileDraining) {
  auto spool = open_spool({.dir = spool_});
  ASSERT_EQ(spool.lock(), Spool::Lock::held);
  ASSERT_TRUE(spool.append("abc\ndefgh\n"));
  std::string_view chunk;
  ASSERT_TRUE(spool.peek(6, chunk));
  ASSERT_TRUE(spool.consume(6));  // "abc\nde"
  EXPECT_EQ(spool.record_sent(), 2U);
  ASSERT_TRUE(spool.rewind_cut_record());
  ASSERT_TRUE(spool.peek(100, chunk));
  EXPECT_EQ(chunk, "defgh\n");
  spool.unlock();
}

TEST_F(SpoolTest, LimitBoundsRoom) {
  auto spool = open_spool({.dir = spool_, .limit = 10});
  ASSERT_EQ(spool.lock(), Spool::Lock::held);
  EXPECT_EQ(spool.room(), 10U);
  ASSERT_TRUE(spool.append("12345678\n"));
  EXPECT_EQ(spool.room(), 1U);
  spool.unlock();
}

}  // namespace
}  // namespace iotsocket::worker::test
