// Error names are a stable interface: logs, metrics and alerts match on them.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "protocol/errors.hpp"

namespace iotsocket::protocol {
namespace {

TEST(Errors, FrameErrorNamesAreStable) {
  EXPECT_EQ(name(FrameError::frame_too_large), "frame_too_large");
  EXPECT_EQ(name(FrameError::bad_version), "bad_version");
  EXPECT_EQ(name(FrameError::bad_header_count), "bad_header_count");
  EXPECT_EQ(name(FrameError::bad_time), "bad_time");
  EXPECT_EQ(name(FrameError::replayed_time), "replayed_time");
  EXPECT_EQ(name(FrameError::key_mismatch), "key_mismatch");
}

TEST(Errors, RecordErrorNamesAreStable) {
  EXPECT_EQ(name(RecordError::empty_line), "empty_line");
  EXPECT_EQ(name(RecordError::bad_escape), "bad_escape");
  EXPECT_EQ(name(RecordError::line_too_long), "line_too_long");
}

TEST(Errors, EveryErrorHasADistinctSnakeCaseName) {
  std::set<std::string> names;
  int count = 0;
  for (int i = 0; i <= static_cast<int>(FrameError::key_mismatch); ++i, ++count) {
    names.emplace(name(static_cast<FrameError>(i)));
  }
  for (int i = 0; i <= static_cast<int>(RecordError::line_too_long); ++i, ++count) {
    names.emplace(name(static_cast<RecordError>(i)));
  }
  EXPECT_EQ(names.size(), static_cast<std::size_t>(count));
  for (const auto& n : names) {
    EXPECT_EQ(n.find_first_not_of("abcdefghijklmnopqrstuvwxyz_"), std::string::npos) << n;
  }
  EXPECT_EQ(name(static_cast<FrameError>(1000)), "unknown_error");
}

}  // namespace
}  // namespace iotsocket::protocol
