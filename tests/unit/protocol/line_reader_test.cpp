// Lines from the push FIFO: split anywhere, bounded in length, never lost after garbage.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "protocol/line_reader.hpp"

namespace iotsocket::protocol {
namespace {

// The lines (or "!too_long") a reader gives for `stream` fed in `chunk`-byte reads.
std::vector<std::string> read_lines(const std::string& stream, std::size_t chunk,
                                    std::size_t max_line = kMaxRecordLine) {
  LineReader reader(max_line);
  std::vector<std::string> out;
  for (std::size_t at = 0; at < stream.size(); at += chunk) {
    reader.feed(std::string_view(stream).substr(at, chunk));
    for (NextLine l = reader.next(); l.status != LineStatus::need_more; l = reader.next()) {
      out.push_back(l.status == LineStatus::line ? std::string(l.text) : "!too_long");
    }
  }
  return out;
}

TEST(LineReader, SplitsLinesWhateverTheReads) {
  const std::string stream = "1 hello\n22 world\n\n333 last one\n";
  const std::vector<std::string> expected{"1 hello", "22 world", "", "333 last one"};
  for (std::size_t chunk = 1; chunk <= stream.size(); ++chunk) {
    EXPECT_EQ(read_lines(stream, chunk), expected) << "chunk " << chunk;
  }
}

TEST(LineReader, KeepsAnUnfinishedLine) {
  LineReader reader;
  reader.feed("1 hello\n2 wor");
  EXPECT_EQ(reader.next().text, "1 hello");
  EXPECT_EQ(reader.next().status, LineStatus::need_more);
  EXPECT_EQ(reader.pending(), 5u);
  reader.feed("ld\n");
  EXPECT_EQ(reader.next().text, "2 world");
}

TEST(LineReader, ReportsATooLongLineOnceAndGoesOn) {
  const std::string stream = "1 ok\n" + std::string(100, 'x') + "\n2 after\n";
  const std::vector<std::string> expected{"1 ok", "!too_long", "2 after"};
  for (std::size_t chunk : {1u, 3u, 7u, 50u, 200u}) {
    EXPECT_EQ(read_lines(stream, chunk, 10), expected) << "chunk " << chunk;
  }
}

TEST(LineReader, ALineOfExactlyTheLimitIsALine) {
  EXPECT_EQ(read_lines(std::string(10, 'y') + "\n", 4, 10), std::vector<std::string>{std::string(10, 'y')});
  EXPECT_EQ(read_lines(std::string(11, 'y') + "\n", 4, 10), std::vector<std::string>{"!too_long"});
}

TEST(LineReader, HoldsNoMoreThanTheLimitWhileSkipping) {
  LineReader reader(100);
  for (int i = 0; i < 1000; ++i) {
    reader.feed(std::string(1000, 'g'));
    while (reader.next().status != LineStatus::need_more) {
    }
    ASSERT_LE(reader.pending(), 100u);
  }
  reader.feed("\n9 survivor\n");
  EXPECT_EQ(reader.next().text, "9 survivor");
}

}  // namespace
}  // namespace iotsocket::protocol
