// Rule 7: TIME at 0.1 ms, and the tolerance check, with the clock passed in.
#include <gtest/gtest.h>

#include <chrono>

#include "protocol/time.hpp"

namespace iotsocket::protocol {
namespace {

using namespace std::chrono_literals;

std::int64_t ticks(const char* text) {
  const auto t = parse_time(text);
  return t ? t->time_since_epoch().count() : -1;
}

TEST(Time, ParsesSecondsAndTruncatesToFourDecimals) {
  EXPECT_EQ(ticks("1795571767.0581"), 17955717670581);
  EXPECT_EQ(ticks("1795571767.05819999"), 17955717670581);
  EXPECT_EQ(ticks("1795571767.5"), 17955717675000);
  EXPECT_EQ(ticks("0.0"), 0);
  EXPECT_EQ(ticks("0001.0001"), 10001);
  EXPECT_EQ(ticks("999999999999.9999"), 9999999999999999);
}

TEST(Time, RefusesAnythingButDigitsDotDigits) {
  for (const char* bad : {"", ".", "1", "1.", ".1", "1..1", "1.1.1", "-1.0", "+1.0", " 1.0",
                          "1.0 ", "1,0", "1e9.0", "0x1.0", "1000000000000.0", "1.0\n"}) {
    EXPECT_FALSE(parse_time(bad)) << '"' << bad << '"';
  }
}

TEST(Time, FormatsWithExactlyFourDecimals) {
  EXPECT_EQ(format_time(*parse_time("1795571767.0581")), "1795571767.0581");
  EXPECT_EQ(format_time(*parse_time("1795571767.5")), "1795571767.5000");
  EXPECT_EQ(format_time(*parse_time("12.000999")), "12.0009");
  EXPECT_EQ(format_time(Time{}), "0.0000");
  EXPECT_EQ(format_time(Time{Tick{-5}}), "0.0000");
}

TEST(Time, ConvertsTheWallClockByTruncation) {
  const auto wall = std::chrono::system_clock::time_point{std::chrono::microseconds{1'795'571'767'058'199}};
  EXPECT_EQ(format_time(to_time(wall)), "1795571767.0581");
}

TEST(Time, ToleranceIsStrictAtTheBoundInBothDirections) {
  const Time now = *parse_time("1795571767.0000");
  EXPECT_TRUE(within_tolerance(now, now, 3s));
  EXPECT_TRUE(within_tolerance(*parse_time("1795571769.9999"), now, 3s));
  EXPECT_TRUE(within_tolerance(*parse_time("1795571764.0001"), now, 3s));
  EXPECT_FALSE(within_tolerance(*parse_time("1795571770.0000"), now, 3s));
  EXPECT_FALSE(within_tolerance(*parse_time("1795571764.0000"), now, 3s));
  EXPECT_FALSE(within_tolerance(*parse_time("0.0"), now, 3s));
  EXPECT_FALSE(within_tolerance(*parse_time("999999999999.9999"), now, 3s));
}

TEST(TimeStamper, GivesStrictlyIncreasingTimesWithinOneTick) {
  TimeStamper stamper;
  const Time now = *parse_time("1795571771.1903");
  const auto first = stamper.next(now, 3s);
  const auto second = stamper.next(now, 3s);
  const auto third = stamper.next(now, 3s);
  ASSERT_TRUE(first && second && third);
  EXPECT_EQ(format_time(*first), "1795571771.1903");
  EXPECT_EQ(format_time(*second), "1795571771.1904");
  EXPECT_EQ(format_time(*third), "1795571771.1905");
}

TEST(TimeStamper, FollowsTheClockWhenItMovesAhead) {
  TimeStamper stamper;
  const Time now = *parse_time("1795571771.1903");
  ASSERT_TRUE(stamper.next(now, 3s));
  EXPECT_EQ(stamper.next(now + 1s, 3s), now + 1s);
}

TEST(TimeStamper, NeverGoesBackWhenTheClockDoes) {
  TimeStamper stamper;
  const Time now = *parse_time("1795571771.1903");
  ASSERT_TRUE(stamper.next(now, 3s));
  // The clock stepped back 1 s: the next TIME is still above the last one, so it runs
  // 1 s and a tick ahead, which a lead of 1 s refuses and a lead of 2 s allows.
  EXPECT_EQ(stamper.next(now - 1s, 1s), std::nullopt);
  EXPECT_EQ(stamper.next(now - 1s, 2s), now + Tick{1});
}

TEST(TimeStamper, ContinuesFromAStoredState) {
  const Time now = *parse_time("1795571771.1903");
  TimeStamper first_connection;
  ASSERT_TRUE(first_connection.next(now, 3s));
  ASSERT_TRUE(first_connection.next(now, 3s));
  TimeStamper reconnected(first_connection.last());
  EXPECT_EQ(reconnected.next(now, 3s), now + Tick{2});
}

TEST(TimeStamper, RefusesToRunTheLeadOutOfTolerance) {
  TimeStamper stamper;
  const Time now = *parse_time("1795571771.0000");
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(stamper.next(now, Tick{10})) << i;
  EXPECT_EQ(stamper.next(now, Tick{10}), std::nullopt);
  EXPECT_EQ(stamper.next(now + Tick{1}, Tick{10}), now + Tick{10});
}

}  // namespace
}  // namespace iotsocket::protocol
