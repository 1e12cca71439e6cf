// Error names are a stable interface: logs, metrics and alerts match on them.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/errors.hpp"

namespace iotsocket::protocol {
namespace {

// Every name, in order: a renamed, removed or reordered error fails here, and an added
// one fails until it is listed (at the end).
TEST(Errors, FrameErrorNamesAreStable) {
  const std::vector<std::string_view> expected = {
      "frame_too_large", "no_blank_line", "header_too_large", "bad_header_count",
      "bad_header_line", "unknown_header", "duplicate_header", "bad_version",
      "bad_time",        "bad_device",    "bad_key",          "body_too_short",
      "body_too_large",  "time_skew",     "replayed_time",    "flood",
      "device_mismatch", "key_mismatch"};
  std::vector<std::string_view> names;
  for (int i = 0; i < kFrameErrorCount; ++i) names.push_back(name(static_cast<FrameError>(i)));
  EXPECT_EQ(names, expected);
}

TEST(Errors, RecordErrorNamesAreStable) {
  const std::vector<std::string_view> expected = {
      "empty_line",        "no_space",          "bad_device_id", "bad_escape",
      "payload_too_short", "payload_too_large", "line_too_long"};
  std::vector<std::string_view> names;
  for (int i = 0; i < kRecordErrorCount; ++i) names.push_back(name(static_cast<RecordError>(i)));
  EXPECT_EQ(names, expected);
}

TEST(Errors, EveryErrorHasADistinctSnakeCaseName) {
  std::set<std::string_view> names;
  for (int i = 0; i < kFrameErrorCount; ++i) names.insert(name(static_cast<FrameError>(i)));
  for (int i = 0; i < kRecordErrorCount; ++i) names.insert(name(static_cast<RecordError>(i)));
  EXPECT_EQ(names.size(), static_cast<std::size_t>(kFrameErrorCount + kRecordErrorCount));
  EXPECT_FALSE(names.contains("unknown_error"));
  for (const auto& n : names) {
    EXPECT_EQ(n.find_first_not_of("abcdefghijklmnopqrstuvwxyz_"), std::string::npos) << n;
  }
  EXPECT_EQ(name(static_cast<FrameError>(kFrameErrorCount)), "unknown_error");
  EXPECT_EQ(name(static_cast<RecordError>(kRecordErrorCount)), "unknown_error");
}

}  // namespace
}  // namespace iotsocket::protocol
