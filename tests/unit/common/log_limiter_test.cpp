// LogLimiter: repeated warnings rate-limited with a count (issue 16, item 6). The clock is
// passed in: no sleeping.
#include "common/log_limiter.hpp"

#include <gtest/gtest.h>

namespace iotsocket {
namespace {

using namespace std::chrono_literals;
using Clock = LogLimiter::Clock;

const Clock::time_point kStart{1000h};

// Admits `count` events at `at`; returns how many may be logged in full.
int admitted(LogLimiter& limiter, int count, Clock::time_point at, std::string_view reason = "r") {
  int logged = 0;
  for (int i = 0; i < count; ++i) logged += limiter.admit(at, reason) ? 1 : 0;
  return logged;
}

TEST(LogLimiter, TheFirstBurstIsLoggedAndTheRestCountedUntilTheIntervalIsOver) {
  LogLimiter limiter(10, 60s);
  EXPECT_EQ(admitted(limiter, 10, kStart), 10);
  EXPECT_FALSE(limiter.admit(kStart + 1s, "bad_device_id"));
  EXPECT_EQ(admitted(limiter, 19'988, kStart + 30s), 0);
  EXPECT_FALSE(limiter.admit(kStart + 59s, "payload_too_short"));
  EXPECT_FALSE(limiter.take_summary(kStart + 59s));  // the interval still runs
  const auto summary = limiter.take_summary(kStart + 60s);
  ASSERT_TRUE(summary);
  EXPECT_EQ(summary->held_back, 19'990u);
  EXPECT_EQ(summary->last, "payload_too_short");
  EXPECT_EQ(summary->span, 60s);
  EXPECT_EQ(summary_line(*summary, "bad push records skipped"),
            "... and 19990 more bad push records skipped in the last 60 s (last: payload_too_short)");
  EXPECT_FALSE(limiter.take_summary(kStart + 61s));  // once
}

TEST(LogLimiter, ANewIntervalStartsWithTheNextEventAndLogsItsBurstAgain) {
  LogLimiter limiter(2, 60s);
  EXPECT_EQ(admitted(limiter, 5, kStart), 2);
  EXPECT_EQ(admitted(limiter, 5, kStart + 2min), 2);  // the first interval is over
  const auto first = limiter.take_summary(kStart + 2min);
  ASSERT_TRUE(first);  // the summary of the first interval was kept for the asking
  EXPECT_EQ(first->held_back, 3u);
  EXPECT_FALSE(limiter.take_summary(kStart + 2min + 59s));
  const auto second = limiter.take_summary(kStart + 3min);
  ASSERT_TRUE(second);
  EXPECT_EQ(second->held_back, 3u);
}

TEST(LogLimiter, NoSummaryWhenNothingWasHeldBack) {
  LogLimiter limiter(10, 60s);
  EXPECT_FALSE(limiter.take_summary(kStart));
  EXPECT_EQ(admitted(limiter, 10, kStart), 10);
  EXPECT_FALSE(limiter.take_summary(kStart + 61s));
  EXPECT_FALSE(limiter.take_final_summary(kStart + 62s));
}

TEST(LogLimiter, TheFinalSummaryCountsTheRunningIntervalAtExit) {
  LogLimiter limiter(1, 60s);
  EXPECT_EQ(admitted(limiter, 4, kStart, "line_too_long"), 1);
  const auto summary = limiter.take_final_summary(kStart + 2500ms);
  ASSERT_TRUE(summary);
  EXPECT_EQ(summary->held_back, 3u);
  EXPECT_EQ(summary->span, 2500ms);
  EXPECT_EQ(summary_line(*summary, "bad lines"), "... and 3 more bad lines in the last 3 s (last: line_too_long)");
  EXPECT_FALSE(limiter.take_final_summary(kStart + 3s));
}

TEST(LogLimiter, ASummaryOfUnderASecondSaysOneSecond) {
  LogLimiter limiter(0, 60s);
  EXPECT_FALSE(limiter.admit(kStart, "r"));
  const auto summary = limiter.take_final_summary(kStart);
  ASSERT_TRUE(summary);
  EXPECT_EQ(summary_line(*summary, "x"), "... and 1 more x in the last 1 s (last: r)");
}

}  // namespace
}  // namespace iotsocket
