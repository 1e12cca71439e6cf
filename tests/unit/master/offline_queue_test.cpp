// OfflineQueue against real SQLite files in a fresh temporary directory per test; the
// clock is passed in. Some tests also read the file with plain SQLite, to see what is stored.
#include "master/offline_queue.hpp"

#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/unit/config/temp_dir.hpp"

namespace iotsocket::master {
namespace {

using namespace std::chrono_literals;
using protocol::DeviceId;
using Clock = std::chrono::system_clock;
using TempDir = config::test::TempDir;

constexpr DeviceId kA{42};
constexpr DeviceId kB{7};
constexpr DeviceId kC{9'999'999'999};
// A fixed, whole-second start: 2024-01-01T00:00:00Z.
const Clock::time_point kT0 = Clock::time_point(1'704'067'200s);

std::vector<std::string> payloads(const std::vector<QueuedPush>& pushes) {
  std::vector<std::string> out;
  for (const QueuedPush& push : pushes) out.push_back(push.payload);
  return out;
}

class OfflineQueueTest : public ::testing::Test {
 protected:
  OfflineOptions options(std::uint32_t max_per_device = 100,
                         std::chrono::seconds max_age = 3600s) const {
    return OfflineOptions{.path = path_, .max_per_device = max_per_device, .max_age = max_age};
  }

  OfflineQueue open(std::uint32_t max_per_device = 100,
                    std::chrono::seconds max_age = 3600s) const {
    auto queue = OfflineQueue::open(options(max_per_device, max_age));
    if (!queue) ADD_FAILURE() << queue.error();
    return std::move(queue).value();
  }

  // Pushes and expects no eviction.
  static void push(OfflineQueue& queue, DeviceId device, std::string_view payload,
                   Clock::time_point at) {
    const auto evicted = queue.push(device, payload, at);
    ASSERT_TRUE(evicted) << evicted.error();
    EXPECT_TRUE(evicted->empty()) << "evicted " << evicted->size() << " for " << payload;
  }

  static OfflineQueue::Taken take(OfflineQueue& queue, DeviceId device, Clock::time_point now) {
    auto taken = queue.take(device, now);
    if (!taken) {
      ADD_FAILURE() << taken.error();
      return {};
    }
    return std::move(taken).value();
  }

  // One value computed by plain SQLite on the queue's file.
  std::string query(const std::string& sql) const {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK)
        << sqlite3_errmsg(db);
    std::string value;
    if (sqlite3_step(stmt) == SQLITE_ROW) {
      const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
      value = text != nullptr ? text : "";
    }
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return value;
  }

  void make_plain_database(const char* sql) const {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    EXPECT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    sqlite3_close(db);
  }

  TempDir dir_;
  std::string path_ = (dir_.path() / "offline.db").string();
};

TEST_F(OfflineQueueTest, TakeReturnsPushesInOrderAndEmptiesTheQueue) {
  OfflineQueue queue = open();
  push(queue, kA, "a1", kT0);
  push(queue, kB, "b1", kT0 + 1s);
  push(queue, kA, "a2", kT0 + 2s);
  push(queue, kA, "a3", kT0 + 2s);  // same time: the order of the calls decides

  const auto taken = take(queue, kA, kT0 + 3s);
  EXPECT_EQ(payloads(taken.pushes), (std::vector<std::string>{"a1", "a2", "a3"}));
  EXPECT_TRUE(taken.expired.empty());
  ASSERT_EQ(taken.pushes.size(), 3u);
  EXPECT_EQ(taken.pushes[0].device, kA);
  EXPECT_EQ(taken.pushes[0].queued_at, kT0);
  EXPECT_EQ(taken.pushes[1].queued_at, kT0 + 2s);

  EXPECT_FALSE(queue.has(kA));
  EXPECT_TRUE(take(queue, kA, kT0 + 3s).pushes.empty());
  EXPECT_EQ(payloads(take(queue, kB, kT0 + 3s).pushes), (std::vector<std::string>{"b1"}));
  EXPECT_EQ(queue.total(), 0u);
  EXPECT_EQ(query("SELECT count(*) FROM pushes"), "0");
}

TEST_F(OfflineQueueTest, QueuedAtKeepsSubSecondPrecision) {
  OfflineQueue queue = open();
  const Clock::time_point at = kT0 + 123'456'789ns;
  push(queue, kA, "x", at);
  const auto taken = take(queue, kA, at);
  ASSERT_EQ(taken.pushes.size(), 1u);
  EXPECT_EQ(taken.pushes[0].queued_at, at);
}

TEST_F(OfflineQueueTest, PushesAndCountsSurviveReopening) {
  {
    OfflineQueue queue = open();
    push(queue, kA, "a1", kT0);
    push(queue, kA, "a2", kT0 + 1s);
    push(queue, kB, "b1", kT0 + 2s);
    push(queue, kC, "c1", kT0 + 3s);
  }
  OfflineQueue queue = open();
  EXPECT_EQ(queue.count(kA), 2u);
  EXPECT_EQ(queue.count(kB), 1u);
  EXPECT_EQ(queue.count(kC), 1u);
  EXPECT_EQ(queue.count(DeviceId{1}), 0u);
  EXPECT_TRUE(queue.has(kC));
  EXPECT_FALSE(queue.has(DeviceId{1}));
  EXPECT_EQ(queue.total(), 4u);

  push(queue, kA, "a3", kT0 + 4s);  // after the reopened ones
  EXPECT_EQ(payloads(take(queue, kA, kT0 + 5s).pushes),
            (std::vector<std::string>{"a1", "a2", "a3"}));
  const auto c = take(queue, kC, kT0 + 5s);
  ASSERT_EQ(c.pushes.size(), 1u);
  EXPECT_EQ(c.pushes[0].device, kC);
  EXPECT_EQ(queue.total(), 1u);
}

TEST_F(OfflineQueueTest, FileIsWalWithSchemaVersionAndBlobPayloads) {
  OfflineQueue queue = open();
  push(queue, kA, "text", kT0);
  EXPECT_EQ(query("PRAGMA journal_mode"), "wal");
  EXPECT_EQ(query("PRAGMA user_version"), "1");
  EXPECT_EQ(query("SELECT typeof(payload) FROM pushes"), "blob");
  EXPECT_EQ(
      query(
          "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name = 'pushes_by_device'"),
      "1");
}

TEST_F(OfflineQueueTest, PushEvictsTheOldestBeyondMaxPerDevice) {
  OfflineQueue queue = open(3);
  push(queue, kA, "a1", kT0);
  push(queue, kA, "a2", kT0 + 1s);
  push(queue, kA, "a3", kT0 + 2s);
  push(queue, kB, "b1", kT0 + 2s);

  const auto evicted = queue.push(kA, "a4", kT0 + 3s);
  ASSERT_TRUE(evicted) << evicted.error();
  ASSERT_EQ(evicted->size(), 1u);
  EXPECT_EQ((*evicted)[0], (QueuedPush{kA, "a1", kT0}));
  EXPECT_EQ(queue.count(kA), 3u);
  EXPECT_EQ(queue.total(), 4u);

  const auto again = queue.push(kA, "a5", kT0 + 4s);
  ASSERT_TRUE(again) << again.error();
  EXPECT_EQ(payloads(*again), (std::vector<std::string>{"a2"}));

  EXPECT_EQ(payloads(take(queue, kA, kT0 + 5s).pushes),
            (std::vector<std::string>{"a3", "a4", "a5"}));
  EXPECT_EQ(payloads(take(queue, kB, kT0 + 5s).pushes), (std::vector<std::string>{"b1"}));
}

TEST_F(OfflineQueueTest, LowerLimitAfterReopeningEvictsDownToIt) {
  {
    OfflineQueue queue = open(10);
    for (int i = 0; i < 5; ++i) {
      push(queue, kA, "a" + std::to_string(i), kT0 + std::chrono::seconds(i));
    }
  }
  OfflineQueue queue = open(2);
  const auto evicted = queue.push(kA, "a5", kT0 + 10s);
  ASSERT_TRUE(evicted) << evicted.error();
  EXPECT_EQ(payloads(*evicted), (std::vector<std::string>{"a0", "a1", "a2", "a3"}));
  EXPECT_EQ(queue.count(kA), 2u);
  EXPECT_EQ(payloads(take(queue, kA, kT0 + 10s).pushes), (std::vector<std::string>{"a4", "a5"}));
}

TEST_F(OfflineQueueTest, ZeroMaxPerDeviceKeepsNothing) {
  OfflineQueue queue = open(0);
  const auto evicted = queue.push(kA, "gone", kT0);
  ASSERT_TRUE(evicted) << evicted.error();
  EXPECT_EQ(payloads(*evicted), (std::vector<std::string>{"gone"}));
  EXPECT_FALSE(queue.has(kA));
  EXPECT_EQ(queue.total(), 0u);
  EXPECT_EQ(query("SELECT count(*) FROM pushes"), "0");
}

TEST_F(OfflineQueueTest, TakeSeparatesExpiredPushes) {
  OfflineQueue queue = open(100, 60s);
  push(queue, kA, "old", kT0);
  push(queue, kA, "edge", kT0 + 10s);  // exactly max_age old at kT0 + 70s: not expired
  push(queue, kA, "fresh", kT0 + 30s);
  push(queue, kA, "older", kT0 + 9s);  // later in the queue, but older by its time

  const auto taken = take(queue, kA, kT0 + 70s);
  EXPECT_EQ(payloads(taken.pushes), (std::vector<std::string>{"edge", "fresh"}));
  EXPECT_EQ(payloads(taken.expired), (std::vector<std::string>{"old", "older"}));
  EXPECT_FALSE(queue.has(kA));
  EXPECT_EQ(queue.total(), 0u);
  EXPECT_EQ(query("SELECT count(*) FROM pushes"), "0");
}

TEST_F(OfflineQueueTest, ExpireRemovesOldPushesOfEveryDevice) {
  OfflineQueue queue = open(100, 60s);
  push(queue, kA, "a-old", kT0);
  push(queue, kB, "b-old", kT0 + 1s);
  push(queue, kA, "a-new", kT0 + 50s);
  push(queue, kC, "c-new", kT0 + 61s);
  push(queue, kB, "b-old2", kT0 + 2s);

  auto none = queue.expire(kT0 + 60s);  // nothing is more than 60 s old yet
  ASSERT_TRUE(none) << none.error();
  EXPECT_TRUE(none->empty());
  EXPECT_EQ(queue.total(), 5u);

  const auto expired = queue.expire(kT0 + 62s + 1ns);  // kT0, kT0+1s and kT0+2s are older than 60 s
  ASSERT_TRUE(expired) << expired.error();
  // By device ID, in queue order per device.
  ASSERT_EQ(payloads(*expired), (std::vector<std::string>{"b-old", "b-old2", "a-old"}));
  EXPECT_EQ((*expired)[0].device, kB);
  EXPECT_EQ((*expired)[2], (QueuedPush{kA, "a-old", kT0}));

  EXPECT_EQ(queue.count(kA), 1u);
  EXPECT_FALSE(queue.has(kB));
  EXPECT_EQ(queue.count(kC), 1u);
  EXPECT_EQ(queue.total(), 2u);
  EXPECT_EQ(query("SELECT count(*) FROM pushes"), "2");
  EXPECT_EQ(payloads(take(queue, kA, kT0 + 62s).pushes), (std::vector<std::string>{"a-new"}));
}

TEST_F(OfflineQueueTest, RequeuedPushesComeBeforeNewerOnesInTheirOrder) {
  OfflineQueue queue = open();
  push(queue, kB, "b1", kT0);  // another device's keys around: requeued keys must not collide
  push(queue, kA, "a1", kT0 + 1s);
  push(queue, kA, "a2", kT0 + 2s);
  push(queue, kB, "b2", kT0 + 2s);
  const auto handed = take(queue, kA, kT0 + 3s);
  ASSERT_EQ(handed.pushes.size(), 2u);

  push(queue, kA, "a3", kT0 + 4s);  // arrived while the connection was closing
  const auto evicted = queue.requeue_front(kA, handed.pushes, kT0 + 5s);
  ASSERT_TRUE(evicted) << evicted.error();
  EXPECT_TRUE(evicted->empty());
  EXPECT_EQ(queue.count(kA), 3u);
  EXPECT_EQ(queue.total(), 5u);
  push(queue, kA, "a4", kT0 + 6s);

  // Twice: requeueing below keys that were themselves requeued.
  const auto second = take(queue, kA, kT0 + 7s);
  EXPECT_EQ(payloads(second.pushes), (std::vector<std::string>{"a1", "a2", "a3", "a4"}));
  ASSERT_TRUE(queue.requeue_front(kA, second.pushes, kT0 + 7s));
  push(queue, kA, "a5", kT0 + 8s);

  OfflineQueue reopened = std::move(queue);  // a moved queue works on
  const auto taken = take(reopened, kA, kT0 + 9s);
  EXPECT_EQ(payloads(taken.pushes), (std::vector<std::string>{"a1", "a2", "a3", "a4", "a5"}));
  ASSERT_GE(taken.pushes.size(), 2u);
  EXPECT_EQ(taken.pushes[0].queued_at, kT0 + 1s);  // queued_at kept
  EXPECT_EQ(taken.pushes[1].queued_at, kT0 + 2s);
  EXPECT_EQ(payloads(take(reopened, kB, kT0 + 9s).pushes), (std::vector<std::string>{"b1", "b2"}));
}

TEST_F(OfflineQueueTest, RequeueIntoAnEmptyFileThenPushKeepsOrderAcrossReopening) {
  const std::vector<QueuedPush> handed{{kA, "r1", kT0}, {kA, "r2", kT0 + 1s}};
  {
    OfflineQueue queue = open();
    ASSERT_TRUE(queue.requeue_front(kA, handed, kT0 + 2s));
    push(queue, kA, "n1", kT0 + 3s);
    push(queue, kA, "n2", kT0 + 4s);
  }
  OfflineQueue queue = open();
  EXPECT_EQ(queue.count(kA), 4u);
  EXPECT_EQ(payloads(take(queue, kA, kT0 + 5s).pushes),
            (std::vector<std::string>{"r1", "r2", "n1", "n2"}));
}

TEST_F(OfflineQueueTest, RequeueEvictsTheOldestLikePush) {
  OfflineQueue queue = open(3);
  push(queue, kA, "n1", kT0 + 10s);
  push(queue, kA, "n2", kT0 + 11s);
  const std::vector<QueuedPush> handed{{kA, "r1", kT0}, {kA, "r2", kT0 + 1s}};
  const auto evicted = queue.requeue_front(kA, handed, kT0 + 12s);
  ASSERT_TRUE(evicted) << evicted.error();
  EXPECT_EQ(*evicted, (std::vector<QueuedPush>{{kA, "r1", kT0}}));
  EXPECT_EQ(queue.count(kA), 3u);
  EXPECT_EQ(queue.total(), 3u);
  EXPECT_EQ(payloads(take(queue, kA, kT0 + 12s).pushes),
            (std::vector<std::string>{"r2", "n1", "n2"}));
}

TEST_F(OfflineQueueTest, RequeueKeepsExpiredPushesForTakeToReport) {
  OfflineQueue queue = open(100, 60s);
  const std::vector<QueuedPush> handed{{kA, "stale", kT0}, {kA, "ok", kT0 + 100s}};
  const auto evicted = queue.requeue_front(kA, handed, kT0 + 120s);
  ASSERT_TRUE(evicted) << evicted.error();
  EXPECT_TRUE(evicted->empty());
  const auto taken = take(queue, kA, kT0 + 120s);
  EXPECT_EQ(payloads(taken.pushes), (std::vector<std::string>{"ok"}));
  EXPECT_EQ(payloads(taken.expired), (std::vector<std::string>{"stale"}));
}

TEST_F(OfflineQueueTest, RequeueRefusesAnotherDevicesPushes) {
  OfflineQueue queue = open();
  const std::vector<QueuedPush> handed{{kA, "a", kT0}, {kB, "b", kT0}};
  const auto result = queue.requeue_front(kA, handed, kT0);
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().find("0000000007"), std::string::npos) << result.error();
  EXPECT_FALSE(queue.has(kA));
  EXPECT_EQ(queue.total(), 0u);
  EXPECT_EQ(query("SELECT count(*) FROM pushes"), "0");

  const auto nothing = queue.requeue_front(kA, {}, kT0);
  ASSERT_TRUE(nothing) << nothing.error();
  EXPECT_FALSE(queue.has(kA));
}

TEST_F(OfflineQueueTest, EveryByteValueRoundTrips) {
  std::string all;
  for (int b = 0; b < 256; ++b) all.push_back(static_cast<char>(b));
  std::string reversed(all.rbegin(), all.rend());
  const std::string nul_only(3, '\0');
  {
    OfflineQueue queue = open();
    push(queue, kA, all, kT0);
    push(queue, kA, "", kT0 + 1s);
    push(queue, kA, nul_only, kT0 + 2s);
    push(queue, kA, reversed, kT0 + 3s);
  }
  OfflineQueue queue = open();
  const auto taken = take(queue, kA, kT0 + 4s);
  ASSERT_EQ(taken.pushes.size(), 4u);
  EXPECT_EQ(taken.pushes[0].payload, all);
  EXPECT_EQ(taken.pushes[1].payload, "");
  EXPECT_EQ(taken.pushes[2].payload, nul_only);
  EXPECT_EQ(taken.pushes[3].payload, reversed);

  // And through requeue_front.
  ASSERT_TRUE(queue.requeue_front(kA, taken.pushes, kT0 + 5s));
  EXPECT_EQ(take(queue, kA, kT0 + 6s).pushes, taken.pushes);
}

TEST_F(OfflineQueueTest, EveryByteValueAloneRoundTrips) {
  std::vector<std::string> singles;
  for (int b = 0; b < 256; ++b) singles.emplace_back(1, static_cast<char>(b));
  {
    OfflineQueue queue = open(1000);
    for (const std::string& one : singles) push(queue, kA, one, kT0);
  }
  OfflineQueue queue = open(1000);
  EXPECT_EQ(payloads(take(queue, kA, kT0).pushes), singles);
}

TEST_F(OfflineQueueTest, DropRemovesOnlyThatDevice) {
  OfflineQueue queue = open();
  push(queue, kA, "a1", kT0);
  push(queue, kB, "b1", kT0);
  push(queue, kA, "a2", kT0);
  const auto dropped = queue.drop(kA);
  ASSERT_TRUE(dropped) << dropped.error();
  EXPECT_EQ(*dropped, 2u);
  EXPECT_FALSE(queue.has(kA));
  EXPECT_EQ(queue.total(), 1u);
  EXPECT_TRUE(take(queue, kA, kT0).pushes.empty());

  const auto again = queue.drop(kA);
  ASSERT_TRUE(again) << again.error();
  EXPECT_EQ(*again, 0u);

  OfflineQueue reopened = open();
  EXPECT_FALSE(reopened.has(kA));
  EXPECT_EQ(reopened.count(kB), 1u);
  EXPECT_EQ(reopened.total(), 1u);
}

// Random operations against a plain model (a deque per device); the counts, the contents
// and, after reopening, the reloaded counts must match it all along.
TEST_F(OfflineQueueTest, CountsStayInStepWithTheTable) {
  constexpr std::uint32_t kMax = 5;
  constexpr auto kMaxAge = 100s;
  std::map<std::uint64_t, std::deque<QueuedPush>> model;
  std::mt19937 random(12345);
  const auto pick = [&random](int n) {
    return std::uniform_int_distribution<int>(0, n - 1)(random);
  };
  const auto model_total = [&model] {
    std::size_t n = 0;
    for (const auto& [device, pushes] : model) n += pushes.size();
    return n;
  };
  const auto expired = [&](const QueuedPush& p, Clock::time_point now) {
    return p.queued_at < now - kMaxAge;
  };

  OfflineQueue queue = open(kMax, kMaxAge);
  Clock::time_point now = kT0;
  for (int step = 0; step < 3000; ++step) {
    now += std::chrono::seconds(pick(3));
    const DeviceId device{static_cast<std::uint64_t>(pick(6))};
    auto& mine = model[device.value];
    const int op = pick(100);
    if (op < 60) {
      const std::string payload = "p" + std::to_string(step);
      const auto evicted = queue.push(device, payload, now);
      ASSERT_TRUE(evicted) << evicted.error();
      mine.push_back({device, payload, now});
      std::vector<QueuedPush> want;
      while (mine.size() > kMax) {
        want.push_back(mine.front());
        mine.pop_front();
      }
      ASSERT_EQ(*evicted, want) << "step " << step;
    } else if (op < 75) {
      const auto taken = queue.take(device, now);
      ASSERT_TRUE(taken) << taken.error();
      std::vector<QueuedPush> want_pushes, want_expired;
      for (const QueuedPush& p : mine) (expired(p, now) ? want_expired : want_pushes).push_back(p);
      mine.clear();
      ASSERT_EQ(taken->pushes, want_pushes) << "step " << step;
      ASSERT_EQ(taken->expired, want_expired) << "step " << step;
      // Half the time the connection closes before writing: back to the front.
      if (pick(2) == 0 && !taken->pushes.empty()) {
        const auto evicted = queue.requeue_front(device, taken->pushes, now);
        ASSERT_TRUE(evicted) << evicted.error();
        mine.assign(taken->pushes.begin(), taken->pushes.end());
        ASSERT_TRUE(evicted->empty());  // they fitted before
      }
    } else if (op < 85) {
      const auto gone = queue.expire(now);
      ASSERT_TRUE(gone) << gone.error();
      std::vector<QueuedPush> want;
      for (auto& [id, pushes] : model) {
        for (const QueuedPush& p : pushes) {
          if (expired(p, now)) want.push_back(p);
        }
        std::erase_if(pushes, [&](const QueuedPush& p) { return expired(p, now); });
      }
      ASSERT_EQ(*gone, want) << "step " << step;
    } else if (op < 90) {
      const auto dropped = queue.drop(device);
      ASSERT_TRUE(dropped) << dropped.error();
      ASSERT_EQ(*dropped, mine.size());
      mine.clear();
    } else if (op < 95) {
      queue = open(kMax, kMaxAge);  // reopening reloads the counts
    } else {
      // Requeue older pushes in front of the current ones; the oldest beyond kMax go.
      std::vector<QueuedPush> handed{{device, "r" + std::to_string(step), now - 1s},
                                     {device, "s" + std::to_string(step), now}};
      const auto evicted = queue.requeue_front(device, handed, now);
      ASSERT_TRUE(evicted) << evicted.error();
      mine.insert(mine.begin(), handed.begin(), handed.end());
      std::vector<QueuedPush> want;
      while (mine.size() > kMax) {
        want.push_back(mine.front());
        mine.pop_front();
      }
      ASSERT_EQ(*evicted, want) << "step " << step;
    }
    for (std::uint64_t id = 0; id < 6; ++id) {
      ASSERT_EQ(queue.count(DeviceId{id}), model[id].size()) << "step " << step << " device " << id;
      ASSERT_EQ(queue.has(DeviceId{id}), !model[id].empty()) << "step " << step;
    }
    ASSERT_EQ(queue.total(), model_total()) << "step " << step;
  }
  EXPECT_EQ(query("SELECT count(*) FROM pushes"), std::to_string(model_total()));
}

// Another connection holds the write lock: each write fails with an error naming the file
// and SQLite's message, and changes nothing (neither the file nor the counts).
TEST_F(OfflineQueueTest, FailedWritesChangeNothing) {
  OfflineQueue queue = open(2);
  push(queue, kA, "a1", kT0);
  push(queue, kA, "a2", kT0 + 1s);

  sqlite3* other = nullptr;
  ASSERT_EQ(sqlite3_open(path_.c_str(), &other), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(other, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK)
      << sqlite3_errmsg(other);

  const auto pushed = queue.push(kA, "a3", kT0 + 2s);
  ASSERT_FALSE(pushed);
  EXPECT_NE(pushed.error().find(path_), std::string::npos) << pushed.error();
  EXPECT_NE(pushed.error().find("device 0000000042"), std::string::npos) << pushed.error();
  EXPECT_NE(pushed.error().find("locked"), std::string::npos) << pushed.error();
  const auto pushed_b = queue.push(kB, "b1", kT0 + 2s);
  ASSERT_FALSE(pushed_b);
  EXPECT_FALSE(queue.has(kB));
  const std::vector<QueuedPush> handed{{kA, "r", kT0}};
  EXPECT_FALSE(queue.requeue_front(kA, handed, kT0 + 2s));
  EXPECT_FALSE(queue.take(kA, kT0 + 2s));
  EXPECT_FALSE(queue.expire(kT0 + 10'000s));
  EXPECT_FALSE(queue.drop(kA));
  EXPECT_EQ(queue.count(kA), 2u);
  EXPECT_EQ(queue.total(), 2u);

  ASSERT_EQ(sqlite3_exec(other, "ROLLBACK", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(other);
  EXPECT_EQ(payloads(take(queue, kA, kT0 + 3s).pushes), (std::vector<std::string>{"a1", "a2"}));
  push(queue, kA, "a3", kT0 + 4s);  // works again
  EXPECT_EQ(queue.total(), 1u);
}

// A failure in the middle of a transaction (here: the eviction after the insert) rolls
// the whole of it back.
TEST_F(OfflineQueueTest, FailureInsideATransactionRollsItBack) {
  OfflineQueue queue = open(2);
  push(queue, kA, "a1", kT0);
  push(queue, kA, "a2", kT0 + 1s);
  make_plain_database(
      "CREATE TRIGGER refuse BEFORE DELETE ON pushes BEGIN SELECT RAISE(ABORT, 'refused by the "
      "test'); END");

  const auto pushed = queue.push(kA, "a3", kT0 + 2s);
  ASSERT_FALSE(pushed);
  EXPECT_NE(pushed.error().find("refused by the test"), std::string::npos) << pushed.error();
  EXPECT_NE(pushed.error().find(path_), std::string::npos) << pushed.error();
  const std::vector<QueuedPush> handed{{kA, "r", kT0}};
  EXPECT_FALSE(queue.requeue_front(kA, handed, kT0 + 2s));
  EXPECT_FALSE(queue.take(kA, kT0 + 2s));
  EXPECT_EQ(queue.count(kA), 2u);
  EXPECT_EQ(queue.total(), 2u);
  EXPECT_EQ(query("SELECT group_concat(CAST(payload AS TEXT), ',') FROM pushes"), "a1,a2");

  make_plain_database("DROP TRIGGER refuse");
  EXPECT_EQ(payloads(take(queue, kA, kT0 + 3s).pushes), (std::vector<std::string>{"a1", "a2"}));
}

TEST_F(OfflineQueueTest, FileThatIsNotADatabaseIsAnErrorNamingIt) {
  std::string garbage;
  for (int i = 0; i < 8192; ++i) garbage.push_back(static_cast<char>((i * 131 + 7) % 256));
  const std::string file = dir_.write("garbage.db", garbage);
  const auto queue = OfflineQueue::open(OfflineOptions{.path = file});
  ASSERT_FALSE(queue);
  EXPECT_NE(queue.error().find(file), std::string::npos) << queue.error();
  EXPECT_NE(queue.error().find("not a database"), std::string::npos) << queue.error();
}

TEST_F(OfflineQueueTest, MissingDirectoryIsAnErrorNamingThePath) {
  const std::string file = (dir_.path() / "no" / "such" / "dir" / "offline.db").string();
  const auto queue = OfflineQueue::open(OfflineOptions{.path = file});
  ASSERT_FALSE(queue);
  EXPECT_NE(queue.error().find(file), std::string::npos) << queue.error();
  EXPECT_NE(queue.error().find("unable to open"), std::string::npos) << queue.error();
  EXPECT_FALSE(std::filesystem::exists(dir_.path() / "no"));
}

TEST_F(OfflineQueueTest, AnotherDatabaseIsRefused) {
  make_plain_database("CREATE TABLE devices (id INTEGER PRIMARY KEY)");
  const auto queue = OfflineQueue::open(options());
  ASSERT_FALSE(queue);
  EXPECT_NE(queue.error().find(path_), std::string::npos) << queue.error();
  EXPECT_NE(queue.error().find("not an offline push queue"), std::string::npos) << queue.error();
}

TEST_F(OfflineQueueTest, NewerSchemaVersionIsRefused) {
  make_plain_database("PRAGMA user_version = 99");
  const auto queue = OfflineQueue::open(options());
  ASSERT_FALSE(queue);
  EXPECT_NE(queue.error().find(path_), std::string::npos) << queue.error();
  EXPECT_NE(queue.error().find("schema version 99 is unknown"), std::string::npos) << queue.error();
}

TEST_F(OfflineQueueTest, BadOptionsAreRefused) {
  const auto negative = OfflineQueue::open(options(100, -1s));
  ASSERT_FALSE(negative);
  EXPECT_NE(negative.error().find("max_age"), std::string::npos) << negative.error();
  const auto no_path = OfflineQueue::open(OfflineOptions{});
  ASSERT_FALSE(no_path);
  EXPECT_FALSE(std::filesystem::exists(path_));
}

TEST_F(OfflineQueueTest, HugeMaxAgeExpiresNothing) {
  OfflineQueue queue = open(100, std::chrono::seconds(std::numeric_limits<std::int64_t>::max()));
  push(queue, kA, "a", Clock::time_point(0s));
  const auto expired = queue.expire(kT0);
  ASSERT_TRUE(expired) << expired.error();
  EXPECT_TRUE(expired->empty());
  EXPECT_EQ(queue.count(kA), 1u);
}

// One transaction per push: how many the master can store per second (logged, not asserted:
// the machine decides).
TEST_F(OfflineQueueTest, PushThroughput) {
  constexpr int kPushes = 20'000;
  constexpr std::uint64_t kDevices = 1'000;
  OfflineQueue queue = open(100, 3600s);
  const std::string payload(200, 'x');
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kPushes; ++i) {
    const auto evicted = queue.push(DeviceId{static_cast<std::uint64_t>(i) % kDevices}, payload,
                                    kT0 + std::chrono::milliseconds(i));
    ASSERT_TRUE(evicted) << evicted.error();
  }
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
  std::printf("[ offline  ] %d pushes of %zu bytes to %llu devices in %.3f s: %.0f pushes/s\n",
              kPushes, payload.size(), static_cast<unsigned long long>(kDevices), took.count(),
              kPushes / took.count());
  EXPECT_EQ(queue.total(), static_cast<std::size_t>(kPushes));

  const auto take_start = std::chrono::steady_clock::now();
  std::size_t taken = 0;
  for (std::uint64_t d = 0; d < kDevices; ++d) {
    taken += take(queue, DeviceId{d}, kT0 + 30s).pushes.size();
  }
  const std::chrono::duration<double> take_took = std::chrono::steady_clock::now() - take_start;
  std::printf("[ offline  ] take() of %llu devices (%zu pushes) in %.3f s\n",
              static_cast<unsigned long long>(kDevices), taken, take_took.count());
  EXPECT_EQ(taken, static_cast<std::size_t>(kPushes));
}

}  // namespace
}  // namespace iotsocket::master
