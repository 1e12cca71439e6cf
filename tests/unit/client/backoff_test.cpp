// Backoff: the exponential step, the equal-jitter draw in [step/2, step], reset, seeds.
#include "client/backoff.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <vector>

namespace iotsocket::client::test {
namespace {

using Ms = Backoff::Duration;

TEST(Backoff, StepDoublesFromInitialUpToMaxAndStaysThere) {
  const Backoff backoff(Ms{100}, Ms{1000}, 1);
  EXPECT_EQ(backoff.step(0), Ms{100});
  EXPECT_EQ(backoff.step(1), Ms{200});
  EXPECT_EQ(backoff.step(2), Ms{400});
  EXPECT_EQ(backoff.step(3), Ms{800});
  EXPECT_EQ(backoff.step(4), Ms{1000});  // 1600 capped
  EXPECT_EQ(backoff.step(5), Ms{1000});
  EXPECT_EQ(backoff.step(64), Ms{1000});  // 100 * 2^64 would overflow any integer
  EXPECT_EQ(backoff.step(1'000'000), Ms{1000});
  EXPECT_EQ(backoff.step(std::numeric_limits<unsigned>::max()), Ms{1000});
}

TEST(Backoff, StepIsInitialWhenInitialEqualsMax) {
  const Backoff backoff(Ms{250}, Ms{250}, 1);
  EXPECT_EQ(backoff.step(0), Ms{250});
  EXPECT_EQ(backoff.step(10), Ms{250});
}

// Options::backoff_max has no upper bound, so "no cap" may be written Duration::max().
// step() must still be min(max, initial * 2^failures), never a wrapped-around value.
TEST(Backoff, StepDoesNotOverflowWhenMaxIsTheLargestDuration) {
  const Backoff backoff(Ms{1000}, Ms::max(), 1);
  EXPECT_EQ(backoff.step(10), Ms{1000 * 1024});
  Ms previous = backoff.step(0);
  for (unsigned failures = 1; failures <= 70; ++failures) {
    const Ms step = backoff.step(failures);
    ASSERT_GE(step, previous) << "step(" << failures << ") went down: " << step.count();
    previous = step;
  }
  EXPECT_EQ(backoff.step(70), Ms::max());
}

TEST(Backoff, NextCountsFailuresAndDrawsWithinHalfAStepAndAStep) {
  Backoff backoff(Ms{100}, Ms{1000}, 7);
  for (unsigned failure = 0; failure < 12; ++failure) {
    ASSERT_EQ(backoff.failures(), failure);
    const Ms step = backoff.step(failure);
    const Ms wait = backoff.next();
    EXPECT_GE(wait, step / 2) << "failure " << failure;
    EXPECT_LE(wait, step) << "failure " << failure;
  }
  EXPECT_EQ(backoff.failures(), 12u);
}

// Many draws for each failure count: all within [step/2, step], and spread over that range
// (a "jitter" that always gave step, or always step/2, fails here).
TEST(Backoff, ManyDrawsStayWithinTheirBoundsAndSpreadOverThem) {
  Backoff backoff(Ms{100}, Ms{1000}, 12345);
  for (unsigned failures = 0; failures < 6; ++failures) {
    const Ms step = backoff.step(failures);
    Ms lowest = Ms::max();
    Ms highest = Ms::min();
    for (int draw = 0; draw < 400; ++draw) {
      backoff.reset();
      for (unsigned i = 0; i < failures; ++i) (void)backoff.next();
      const Ms wait = backoff.next();
      ASSERT_GE(wait, step / 2) << "failures " << failures;
      ASSERT_LE(wait, step) << "failures " << failures;
      lowest = std::min(lowest, wait);
      highest = std::max(highest, wait);
    }
    EXPECT_LT(lowest, step * 3 / 5) << "failures " << failures;
    EXPECT_GT(highest, step * 9 / 10) << "failures " << failures;
  }
}

TEST(Backoff, ResetStartsOverFromInitial) {
  Backoff backoff(Ms{100}, Ms{60'000}, 3);
  for (int i = 0; i < 8; ++i) (void)backoff.next();
  EXPECT_EQ(backoff.failures(), 8u);
  backoff.reset();
  EXPECT_EQ(backoff.failures(), 0u);
  for (int draw = 0; draw < 50; ++draw) {
    backoff.reset();
    const Ms wait = backoff.next();
    EXPECT_GE(wait, Ms{50});
    EXPECT_LE(wait, Ms{100});  // step(0), not step(8) = 25.6 s
  }
}

TEST(Backoff, TwoSeedsGiveDifferentSequencesAndOneSeedTheSame) {
  auto draws = [](std::uint64_t seed) {
    Backoff backoff(Ms{1000}, Ms{60'000}, seed);
    std::vector<Ms::rep> waits;
    for (int i = 0; i < 20; ++i) waits.push_back(backoff.next().count());
    return waits;
  };
  EXPECT_NE(draws(1), draws(2));
  EXPECT_EQ(draws(1), draws(1));
}

}  // namespace
}  // namespace iotsocket::client::test
