// What the master keeps of the pushes it handed to a worker: numbered in send order,
// forgotten when settled in any order, all of the unsettled ones (and only those) given
// back oldest first when the worker dies, and memory in proportion to what is unsettled
// even while one push stays unsettled for good.
#include "master/in_flight.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <string>
#include <vector>

namespace iotsocket::master {
namespace {

channel::Message push(std::int64_t stamp, std::uint64_t device = 1234567890) {
  return channel::Message{.cmd = channel::Cmd::push, .device = device, .queued_at_ns = stamp};
}

using Pushes = std::vector<std::pair<channel::Message, std::string>>;

std::vector<std::int64_t> stamps_of(const Pushes& all) {
  std::vector<std::int64_t> out;
  for (const auto& [m, payload] : all) out.push_back(m.queued_at_ns);
  return out;
}

TEST(InFlightPushes, NumbersPushesInSendOrderAndReturnsWhatToSend) {
  InFlightPushes f;
  const auto [first, first_payload] = f.add(push(100), "one");
  EXPECT_EQ(first.seq, 1u);
  EXPECT_EQ(first.queued_at_ns, 100);
  EXPECT_EQ(first_payload, "one");
  const auto [second, second_payload] = f.add(push(200), "two");
  EXPECT_EQ(second.seq, 2u);
  EXPECT_EQ(second_payload, "two");
  EXPECT_EQ(f.unsettled(), 2u);
}

TEST(InFlightPushes, SettledInAnyOrderTheyAreForgottenAndTheFrontIsDropped) {
  InFlightPushes f;
  for (std::int64_t i = 1; i <= 5; ++i) f.add(push(i * 10), "p" + std::to_string(i));
  f.settle(2);
  f.settle(4);
  EXPECT_EQ(f.unsettled(), 3u);
  EXPECT_EQ(f.held(), 5u);  // 1 is still unsettled at the front
  f.settle(1);
  EXPECT_EQ(f.held(), 3u);  // 1 and 2 dropped; 3 is the front, settled 4 waits behind it
  f.settle(4);              // twice: ignored
  f.settle(99);             // never sent: ignored
  f.settle(0);
  EXPECT_EQ(f.unsettled(), 2u);
  const auto left = f.take_all();
  EXPECT_EQ(stamps_of(left), (std::vector<std::int64_t>{30, 50}));
  EXPECT_EQ(left[0].second, "p3");
  EXPECT_EQ(left[1].second, "p5");
  EXPECT_EQ(f.unsettled(), 0u);
  EXPECT_EQ(f.held(), 0u);
}

TEST(InFlightPushes, TakeAllGivesTheOldestStampFirstWhateverTheSendOrder) {
  // A push sent again after it came back keeps its old stamp, so the send order and the
  // stamp order differ; the device's queue needs the stamp order.
  InFlightPushes f;
  f.add(push(500), "new");
  f.add(push(100), "old, sent again");
  f.add(push(300), "middle");
  EXPECT_EQ(stamps_of(f.take_all()), (std::vector<std::int64_t>{100, 300, 500}));
}

TEST(InFlightPushes, NumbersGoOnAfterTakeAll) {
  InFlightPushes f;
  f.add(push(1), "a");
  f.take_all();
  const auto [m, payload] = f.add(push(2), "b");
  EXPECT_EQ(m.seq, 2u);  // a late settle of 1 cannot hit the new push
  f.settle(1);
  EXPECT_EQ(f.unsettled(), 1u);
  f.settle(2);
  EXPECT_EQ(f.unsettled(), 0u);
}

TEST(InFlightPushes, OneUnsettledPushDoesNotHoldEveryLaterOne) {
  InFlightPushes f;
  f.add(push(0), "stuck");  // seq 1: its device reads nothing
  constexpr std::uint64_t kLater = 100'000;
  for (std::uint64_t i = 1; i <= kLater; ++i) {
    const auto [m, payload] = f.add(push(static_cast<std::int64_t>(i)), "flowing");
    f.settle(m.seq);
    ASSERT_LE(f.held(), 4096u + 4u * f.unsettled() + 1u) << "after " << i;
  }
  EXPECT_EQ(f.unsettled(), 1u);
  // The stuck one is still known, settles, and is given back when not settled.
  f.add(push(kLater + 1), "last");
  const std::vector<std::int64_t> expected = {0, static_cast<std::int64_t>(kLater + 1)};
  EXPECT_EQ(stamps_of(f.take_all()), expected);
  f.add(push(kLater + 2), "again");
  f.settle(1);  // long gone: ignored
  EXPECT_EQ(f.unsettled(), 1u);
}

TEST(InFlightPushes, AStuckPushMovedAsideStillSettles) {
  InFlightPushes f;
  f.add(push(0), "stuck");
  for (std::int64_t i = 1; i <= 10'000; ++i) f.settle(f.add(push(i), "x").first.seq);
  ASSERT_LT(f.held(), 10'000u);  // compacted: the stuck one is aside
  f.settle(1);
  EXPECT_EQ(f.unsettled(), 0u);
  EXPECT_TRUE(f.take_all().empty());
}

TEST(InFlightPushes, RandomSettlesLeaveExactlyTheUnsettled) {
  std::mt19937_64 random(7);
  InFlightPushes f;
  std::vector<std::uint64_t> open;
  std::vector<std::int64_t> expected;
  for (std::int64_t i = 0; i < 50'000; ++i) {
    open.push_back(f.add(push(i), std::to_string(i)).first.seq);
    if (open.size() > 50 && random() % 2 == 0) {
      const std::size_t at = random() % open.size();
      f.settle(open[at]);
      open.erase(open.begin() + static_cast<std::ptrdiff_t>(at));
    }
  }
  ASSERT_EQ(f.unsettled(), open.size());
  for (std::uint64_t seq : open) expected.push_back(static_cast<std::int64_t>(seq - 1));
  const auto left = f.take_all();
  EXPECT_EQ(stamps_of(left), expected);
  for (const auto& [m, payload] : left) EXPECT_EQ(payload, std::to_string(m.queued_at_ns));
}

}  // namespace
}  // namespace iotsocket::master
