// SkewTracker and skew_ms(): the clock skew `iotsocketctl devices show` reports.
#include "common/clock_skew.hpp"

#include <gtest/gtest.h>

namespace iotsocket {
namespace {

using protocol::Tick;
using protocol::Time;

const Time kNow{Tick{17'000'000'000'000}};

TEST(SkewMs, IsTimeMinusNowInWholeMilliseconds) {
  EXPECT_EQ(skew_ms(kNow, kNow), 0);
  EXPECT_EQ(skew_ms(kNow + Tick{15'000}, kNow), 1500);   // 1.5 s ahead
  EXPECT_EQ(skew_ms(kNow - Tick{20'009}, kNow), -2000);  // 2.0009 s behind: truncated
  EXPECT_EQ(skew_ms(kNow + Tick{9}, kNow), 0);           // under a millisecond
  EXPECT_EQ(skew_ms(Time{}, kNow), -INT32_MAX);          // clamped, never INT32_MIN
  EXPECT_EQ(skew_ms(kNow, Time{}), INT32_MAX);
}

TEST(SkewTracker, LastAndLargestInMagnitudeKeepTheirSign) {
  SkewTracker t;
  EXPECT_FALSE(t.any());
  t.add(300);
  EXPECT_TRUE(t.any());
  EXPECT_EQ(t.value(), (ClockSkew{.last_ms = 300, .largest_ms = 300}));
  t.add(-1200);
  t.add(900);
  EXPECT_EQ(t.value(), (ClockSkew{.last_ms = 900, .largest_ms = -1200}));
}

// The largest covers the last kWindow to 2 × kWindow frames: a spike ages out.
TEST(SkewTracker, ASpikeAgesOutAfterTwoWindows) {
  SkewTracker t;
  t.add(2500);
  for (std::uint32_t i = 1; i < 2 * SkewTracker::kWindow - 1; ++i) {
    t.add(10);
    ASSERT_EQ(t.value().largest_ms, 2500) << "frame " << i;  // still within reach
  }
  t.add(10);  // frame 2 × kWindow ends the second window: the spike's is dropped
  EXPECT_EQ(t.value(), (ClockSkew{.last_ms = 10, .largest_ms = 10}));
  for (std::uint32_t i = 0; i < 10 * SkewTracker::kWindow; ++i) t.add(i % 2 == 0 ? 10 : -20);
  EXPECT_EQ(t.value().largest_ms, -20);
}

}  // namespace
}  // namespace iotsocket
