// Replay window and flood gate: never accept a TIME twice, in bounded memory.
#include <gtest/gtest.h>

#include <chrono>
#include <random>
#include <set>
#include <vector>

#include "protocol/replay.hpp"

namespace iotsocket::protocol {
namespace {

using namespace std::chrono_literals;

const Time kStart = Time{std::chrono::seconds{1'795'571'767}};

TEST(ReplayWindow, RefusesTimesAtOrBeforeItsStart) {
  const auto window = ReplayWindow::starting_at(kStart);
  EXPECT_FALSE(window.is_fresh(kStart));
  EXPECT_FALSE(window.is_fresh(kStart - 1s));
  EXPECT_TRUE(window.is_fresh(kStart + Tick{1}));
}

TEST(ReplayWindow, RefusesATimeOnceAccepted) {
  auto window = ReplayWindow::starting_at(kStart);
  const Time t = kStart + 1s;
  ASSERT_TRUE(window.is_fresh(t));
  window.accept(t);
  EXPECT_FALSE(window.is_fresh(t));
  EXPECT_TRUE(window.is_fresh(t + Tick{1}));
}

TEST(ReplayWindow, AcceptsSlightlyOutOfOrderTimes) {
  auto window = ReplayWindow::starting_at(kStart);
  for (int i : {5, 3, 4, 1, 2}) {
    const Time t = kStart + Tick{i};
    ASSERT_TRUE(window.is_fresh(t)) << i;
    window.accept(t);
  }
  for (int i = 1; i <= 5; ++i) EXPECT_FALSE(window.is_fresh(kStart + Tick{i})) << i;
}

TEST(ReplayWindow, FallsBackToTheHighWaterMarkBeyondItsSlots) {
  auto window = ReplayWindow::starting_at(kStart);
  const int n = static_cast<int>(ReplayWindow::kSlots) + 3;
  for (int i = 1; i <= n; ++i) window.accept(kStart + Tick{10 * i});
  // The three oldest were evicted into the floor: all times up to the third are refused,
  // also the never-seen ones between them.
  EXPECT_EQ(window.floor, kStart + Tick{30});
  EXPECT_FALSE(window.is_fresh(kStart + Tick{15}));
  EXPECT_TRUE(window.is_fresh(kStart + Tick{35}));
  // A time older than every slot is recorded by the floor itself.
  window.accept(kStart + Tick{35});
  EXPECT_FALSE(window.is_fresh(kStart + Tick{35}));
  EXPECT_FALSE(window.is_fresh(kStart + Tick{33}));
}

// Whatever order the TIMEs come in, a value accepted once is never fresh again.
TEST(ReplayWindow, NeverAcceptsAValueTwiceUnderRandomTraffic) {
  std::mt19937 random(20261125);
  std::uniform_int_distribution<int> jitter(-40, 40);
  auto window = ReplayWindow::starting_at(kStart);
  std::set<Time> accepted;
  Time clock = kStart;
  for (int i = 0; i < 100'000; ++i) {
    clock += Tick{3};
    const Time t = clock + Tick{jitter(random)};
    const bool fresh = window.is_fresh(t);
    if (accepted.contains(t)) {
      ASSERT_FALSE(fresh) << "replay of " << t.time_since_epoch().count();
    }
    if (fresh) {
      window.accept(t);
      accepted.insert(t);
    }
  }
  EXPECT_GT(accepted.size(), 50'000u) << "the window should not refuse most fresh traffic";
}

TEST(FloodGate, RefusesTheFrameOverTheLimitInABurst) {
  FloodGate gate(333, 3s);
  for (int i = 0; i < 333; ++i) ASSERT_TRUE(gate.admit(kStart)) << i;
  EXPECT_FALSE(gate.admit(kStart));
}

TEST(FloodGate, AdmitsASteadyRateBelowTheLimitForever) {
  FloodGate gate(333, 3s);
  Time now = kStart;
  for (int i = 0; i < 100 * 600; ++i) {  // ten minutes at 100 frames a second
    ASSERT_TRUE(gate.admit(now)) << "frame " << i;
    now += Tick{100};
  }
}

TEST(FloodGate, RefusesASteadyRateAboveTheLimit) {
  FloodGate gate(333, 3s);
  Time now = kStart;
  int admitted = 0;
  while (gate.admit(now) && admitted < 10'000) {
    ++admitted;
    now += Tick{75};  // 133 per second: 400 per 3 s
  }
  EXPECT_LT(admitted, 1000) << "refused within a few windows";
}

TEST(FloodGate, ForgetsABurstOnceTheWindowHasPassed) {
  FloodGate gate(10, 3s);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(gate.admit(kStart));
  EXPECT_FALSE(gate.admit(kStart + 1s));
  FloodGate later(10, 3s);
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(later.admit(kStart));
  for (int i = 0; i < 10; ++i) ASSERT_TRUE(later.admit(kStart + 6s)) << i;
}

// The estimate's worst case: the whole limit at the end of one fixed window, then as much
// as it lets through in the next. No window of that length may hold more than 2 * limit.
TEST(FloodGate, ABurstAcrossTheWindowBoundaryPassesAtMostTwiceTheLimit) {
  const std::uint32_t limit = 333;
  FloodGate gate(limit, 3s);
  ASSERT_TRUE(gate.admit(kStart));  // starts the first window at kStart
  std::vector<Time> admitted{kStart};
  for (std::uint32_t i = 1; i < limit; ++i) {
    ASSERT_TRUE(gate.admit(kStart + 3s - Tick{1}));
    admitted.push_back(kStart + 3s - Tick{1});
  }
  for (Time t = kStart + 3s; t < kStart + 9s; t += Tick{50}) {
    if (gate.admit(t)) admitted.push_back(t);
  }
  std::size_t worst = 0;
  for (std::size_t first = 0; first < admitted.size(); ++first) {
    std::size_t last = first;
    while (last < admitted.size() && admitted[last] < admitted[first] + 3s) ++last;
    worst = std::max(worst, last - first);
  }
  EXPECT_GT(worst, limit) << "the estimate is not exact; if it became so, tighten this test";
  EXPECT_LE(worst, 2 * limit);
}

TEST(FloodGate, ToleratesAClockThatStepsBack) {
  FloodGate gate(5, 3s);
  ASSERT_TRUE(gate.admit(kStart));
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(gate.admit(kStart - 10s)) << i;
  EXPECT_FALSE(gate.admit(kStart - 10s));
}

}  // namespace
}  // namespace iotsocket::protocol
