// client/pacer.hpp with a simulated clock: the bound that keeps a device under the
// server's flood limit (at most burst + W * rate frames in any window of W), checked over
// every window of a greedy sender, and the plain cases around it.
#include <gtest/gtest.h>

#include <deque>

#include "client/pacer.hpp"

namespace iotsocket::client {
namespace {

using namespace std::chrono_literals;
using Time = Pacer::Time;

TEST(Pacer, NoLimitLetsEveryFrameGoAtOnce) {
  Pacer pacer(0, 1);
  const Time t0{};
  for (int i = 0; i < 1000; ++i) {
    ASSERT_EQ(pacer.next_allowed(t0), t0);
    pacer.sent(t0);
  }
}

TEST(Pacer, ABurstGoesAtOnceThenTheRateHolds) {
  Pacer pacer(90, 30);
  const Time t0 = Time{} + 10s;
  for (int i = 0; i < 30; ++i) {
    ASSERT_EQ(pacer.next_allowed(t0), t0) << "frame " << i;
    pacer.sent(t0);
  }
  // The 31st waits one interval (1/90 s).
  EXPECT_EQ(pacer.next_allowed(t0), t0 + std::chrono::nanoseconds(1'000'000'000 / 90));
}

TEST(Pacer, AQuietSpellRefillsTheBurstButNoMore) {
  Pacer pacer(10, 5);
  Time t = Time{} + 10s;
  for (int i = 0; i < 5; ++i) pacer.sent(t);
  t += 1h;
  int at_once = 0;
  while (pacer.next_allowed(t) == t) {
    pacer.sent(t);
    ++at_once;
  }
  EXPECT_EQ(at_once, 5);
}

// A sender that writes whenever the pacer allows, for 20 s: every sliding window of 3 s
// holds at most 30 + 3 * 90 = 300 frames (the server closes at 333), and the long-run rate
// is 90 per second.
TEST(Pacer, AGreedySenderStaysWithinBurstPlusRateInEveryWindow) {
  Pacer pacer(90, 30);
  const Time start = Time{} + 100s;
  std::deque<Time> window;
  std::size_t most = 0;
  std::size_t total = 0;
  for (Time t = start; t < start + 20s;) {
    t = pacer.next_allowed(t);
    pacer.sent(t);
    ++total;
    window.push_back(t);
    while (window.front() <= t - 3s) window.pop_front();
    most = std::max(most, window.size());
  }
  EXPECT_LE(most, 300u);
  EXPECT_GE(most, 290u);  // and it does use what it may
  EXPECT_NEAR(static_cast<double>(total), 30.0 + 20.0 * 90.0, 2.0);
}

}  // namespace
}  // namespace iotsocket::client
