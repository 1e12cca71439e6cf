// The push path end to end (issue 4): a backend writes `ID payload` lines into the push
// FIFO and the device receives push frames, from the built iotsocketd with real TLS, real
// FIFOs, the real shared-memory device table and the real offline queue (SQLite).
#include <poll.h>
#include <signal.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <memory>
#include <set>
#include <thread>

#include "protocol/time.hpp"
#include "tests/e2e/harness.hpp"

namespace iotsocket::e2e {
namespace {

using protocol::DeviceId;

constexpr std::uint64_t kFirstId = 1100000000;
const std::string kKey = "push-test-key-0001";


std::unique_ptr<Device> logged_in(TestServer& server, InboundReader& reader, std::uint64_t id) {
  return e2e::logged_in(server, reader, id, kKey);
}

int number_of(const PushFrame& push) { return std::stoi(push.payload.substr(2)); }

// Reads pushes "n=...;" until "n=<count-1>;" arrives (or 30 s pass).
std::vector<PushFrame> read_through_last(Device& device, int count) {
  std::vector<PushFrame> all;
  const auto deadline = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < deadline &&
         (all.empty() || number_of(all.back()) != count - 1)) {
    auto some = device.read_pushes(1, 1s);
    all.insert(all.end(), some.begin(), some.end());
  }
  return all;
}

// `first` came on the old connection and `rest` on the next: together they are the pushes
// "n=0;..." to "n=<count-1>;..." in order, none lost. `first` is 0 to k-1, and `rest` runs
// on from at most k to count-1; it may start up to `max_repeats` pushes back (those that
// were written when the old connection ended come again: at least once).
void expect_every_push_in_order(const std::vector<PushFrame>& first,
                                const std::vector<PushFrame>& rest, int count,
                                int max_repeats) {
  std::string all;
  for (const auto* batch : {&first, &rest}) {
    for (const auto& p : *batch) all += std::to_string(number_of(p)) + ",";
    all += " | ";
  }
  const int k = static_cast<int>(first.size());
  for (int i = 0; i < k; ++i) ASSERT_EQ(number_of(first[static_cast<std::size_t>(i)]), i) << all;
  ASSERT_FALSE(rest.empty()) << all;
  const int from = number_of(rest.front());
  EXPECT_LE(from, k) << "pushes lost: " << all;
  EXPECT_GE(from, k - max_repeats) << "too many pushes sent twice: " << all;
  ASSERT_EQ(rest.size(), static_cast<std::size_t>(count - from)) << all;
  for (std::size_t i = 0; i < rest.size(); ++i) {
    ASSERT_EQ(number_of(rest[i]), from + static_cast<int>(i)) << "out of order: " << all;
  }
}

class PushTest : public ::testing::Test {
 protected:
  explicit PushTest(ServerOptions options = {}) : server_(std::move(options)) {}
  void SetUp() override {
    server_.add_devices(kFirstId, 20, kKey);
    server_.start();
    reader_.emplace(server_.inbound_fifo());
  }

  TestServer server_;
  std::optional<InboundReader> reader_;
};

TEST_F(PushTest, PushReachesConnectedDeviceInTheLegacyServersBytes) {
  auto d = logged_in(server_, *reader_, kFirstId);
  server_.push_lines(push_record(kFirstId, "hello-device"));
  auto pushes = d->read_pushes(1);
  ASSERT_EQ(pushes.size(), 1u) << server_.log();
  EXPECT_EQ(pushes[0].device, DeviceId{kFirstId});
  EXPECT_EQ(pushes[0].payload, "hello-device");
  const auto now = protocol::to_time(std::chrono::system_clock::now());
  EXPECT_TRUE(protocol::within_tolerance(pushes[0].time, now, std::chrono::seconds(3)));
  // docs/PROTOCOL.md: the legacy server's push frame, byte for byte but for TIME.
  const std::string expected = "\r\nIOT:1.1\r\nDATE:24/7/2019\r\nTIME:" +
                               protocol::format_time(pushes[0].time) + "\r\nDEVICE:" +
                               std::to_string(kFirstId) +
                               "\r\nKEY:AJ\r\n        \r\n\r\nhello-device|#|";
  EXPECT_EQ(d->raw_received(), expected);
}

TEST_F(PushTest, EscapesInTheRecordBecomeBytesInTheFrame) {
  auto d = logged_in(server_, *reader_, kFirstId);
  server_.push_lines(push_record(kFirstId, "a\\nb\\\\c\\rd"));
  auto pushes = d->read_pushes(1);
  ASSERT_EQ(pushes.size(), 1u) << server_.log();
  EXPECT_EQ(pushes[0].payload, "a\nb\\c\rd");
}

TEST_F(PushTest, PushesInTheSameTickGetDistinctIncreasingTimes) {
  auto d = logged_in(server_, *reader_, kFirstId);
  std::string burst;
  for (int i = 0; i < 50; ++i) burst += push_record(kFirstId, "burst-" + std::to_string(i));
  server_.push_lines(burst);  // one write: all of them within well under a millisecond
  auto pushes = d->read_pushes(50);
  ASSERT_EQ(pushes.size(), 50u) << server_.log();
  for (std::size_t i = 0; i < pushes.size(); ++i) {
    EXPECT_EQ(pushes[i].payload, "burst-" + std::to_string(i));
    if (i > 0) {
      EXPECT_GT(pushes[i].time, pushes[i - 1].time) << "push " << i;
    }
  }
  EXPECT_EQ(d->bad_frames(), 0u);
}

TEST_F(PushTest, BadRecordsAreLoggedAndSkippedWhileGoodOnesAroundThemArrive) {
  auto d = logged_in(server_, *reader_, kFirstId);
  const std::string too_long(200'000, 'x');
  std::string text;
  text += push_record(kFirstId, "good-1");
  text += "nospaceatall\n";
  text += "12a4 letters-in-id\n";
  text += push_record(kFirstId, "abc");  // 3 bytes: under the 5 a body needs
  text += std::to_string(kFirstId) + " " + too_long + "\n";
  text += push_record(kFirstId, "good-2");
  text += push_record(9999999999, "for-a-device-nobody-registered");
  text += push_record(kFirstId, "good-3");
  server_.push_lines(text);
  auto pushes = d->read_pushes(3);
  ASSERT_EQ(pushes.size(), 3u) << server_.log();
  EXPECT_EQ(pushes[0].payload, "good-1");
  EXPECT_EQ(pushes[1].payload, "good-2");
  EXPECT_EQ(pushes[2].payload, "good-3");
  EXPECT_TRUE(server_.wait_for_log("bad push record skipped: reason=no_space line='nospaceatall'"));
  EXPECT_TRUE(server_.wait_for_log("bad push record skipped: reason=bad_device_id line='12a4"));
  EXPECT_TRUE(server_.wait_for_log("bad push record skipped: reason=payload_too_short"));
  EXPECT_TRUE(server_.wait_for_log("bad push record skipped: reason=line_too_long"));
  EXPECT_TRUE(server_.wait_for_log("push refused: device=9999999999 is not in the registry"));
  // Nothing more arrives, and the server goes on serving.
  EXPECT_TRUE(d->read_pushes(1, 300ms).empty());
  server_.push_lines(push_record(kFirstId, "after-the-bad-ones"));
  ASSERT_EQ(d->read_pushes(1).size(), 1u);
}

// Issue 16, item 6: whoever can write the push FIFO can neither forge log lines (ESC, CR,
// invalid UTF-8 come out as \xNN) nor flood the log (the first 10 bad records, and the
// first 10 pushes refused, in a minute are logged, the rest counted in one summary line
// each), and the server goes on serving.
TEST_F(PushTest, GarbageInThePushFifoIsLoggedEscapedAndRateLimitedAndTheServerServes) {
  constexpr std::size_t kBadRecordsLogged = 10;  // PushIntake::kBadRecordsLogged
  auto d = logged_in(server_, *reader_, kFirstId);
  constexpr std::size_t kGarbage = 20'000;
  const std::string kinds[] = {
      "\x1b[2J\x1b[31mforged\r2099-01-01T00:00:00.000 critical master: a forged line",
      "12\x1b]0;title\x07 bad-device-id",
      std::to_string(kFirstId) + " \xff\xfe",  // payload under 5 bytes, not UTF-8
      "\xc3\x28\xa0\xa1 \xf0\x28\x8c\x28 invalid UTF-8 everywhere",
  };
  std::string garbage;
  for (std::size_t i = 0; i < kGarbage; ++i) garbage += kinds[i % 4] + "\n";
  server_.push_lines(garbage);
  // Well-formed, for a device nobody registered: refused, and as limited in the log.
  constexpr std::size_t kRefused = 2'000;
  std::string unknown;
  for (std::size_t i = 0; i < kRefused; ++i) unknown += push_record(9999999999, "for-nobody");
  server_.push_lines(unknown);
  server_.push_lines(push_record(kFirstId, "after-the-garbage"));
  const auto pushes = d->read_pushes(1, 30s);
  ASSERT_EQ(pushes.size(), 1u) << server_.log().substr(0, 4000);
  EXPECT_EQ(pushes[0].payload, "after-the-garbage");

  const std::string during = server_.log();
  EXPECT_EQ(server_.count_in_log("bad push record skipped: reason="), kBadRecordsLogged);
  EXPECT_NE(during.find("bad push record skipped: reason=bad_device_id "
                        "line='\\x1b[2J\\x1b[31mforged\\x0d2099-01-01T00:00:00.000 critical"),
            std::string::npos)
      << during.substr(0, 4000);
  EXPECT_NE(during.find("line='" + std::to_string(kFirstId) + " \\xff\\xfe'"), std::string::npos);
  ASSERT_EQ(server_.stop(), 0);
  const std::string log = server_.log();
  EXPECT_EQ(log.find_first_of("\x1b\r"), std::string::npos) << "a raw ESC or CR reached the log";
  EXPECT_EQ(log.find("\xff\xfe"), std::string::npos) << "raw invalid UTF-8 reached the log";
  EXPECT_EQ(log.find("\n2099-01-01"), std::string::npos) << "a forged line";
  // The rest are counted, not lost: one summary line (at exit here; every minute under a
  // flood that lasts).
  const std::string summary = "... and " + std::to_string(kGarbage - kBadRecordsLogged) +
                              " more bad push records skipped in the last ";
  EXPECT_EQ(server_.count_in_log("more bad push records skipped"), 1u) << log.substr(log.size() - 2000);
  EXPECT_NE(log.find(summary), std::string::npos) << log.substr(log.size() - 2000);
  EXPECT_EQ(server_.count_in_log("push refused: device=9999999999"), kBadRecordsLogged);
  EXPECT_NE(log.find("... and " + std::to_string(kRefused - kBadRecordsLogged) +
                     " more pushes refused in the last "),
            std::string::npos)
      << log.substr(log.size() - 2000);
}

TEST_F(PushTest, ThousandDevicesTenThousandPushesEachExactlyOnceInOrder) {
  constexpr std::size_t kDevices = 1000;
  constexpr std::size_t kPerDevice = 10;
  constexpr std::uint64_t kBase = 1200000000;
  server_.add_devices(kBase, kDevices, kKey);
  std::vector<std::unique_ptr<Device>> devices;
  for (std::size_t i = 0; i < kDevices; ++i) {
    devices.push_back(std::make_unique<Device>(server_.port()));
    ASSERT_TRUE(devices.back()->send_frame(DeviceId{kBase + i}, kKey, "login-frame"));
  }
  ASSERT_EQ(reader_->read(kDevices, 60s).size(), kDevices) << server_.log();
  // Interleaved over devices, as a backend serving many would write them.
  std::string text;
  for (std::size_t n = 0; n < kPerDevice; ++n) {
    for (std::size_t i = 0; i < kDevices; ++i) text += push_record(kBase + i, "cmd-" + std::to_string(n));
  }
  server_.push_lines(text);

  std::vector<std::vector<PushFrame>> got(kDevices);
  std::size_t total = 0;
  const auto deadline = Clock::now() + 120s;
  while (total < kDevices * kPerDevice && Clock::now() < deadline) {
    std::vector<pollfd> fds;
    std::vector<std::size_t> which;
    for (std::size_t i = 0; i < kDevices; ++i) {
      if (got[i].size() < kPerDevice) {
        fds.push_back(pollfd{devices[i]->fd(), POLLIN, 0});
        which.push_back(i);
      }
    }
    if (::poll(fds.data(), fds.size(), 200) <= 0) continue;
    for (std::size_t k = 0; k < fds.size(); ++k) {
      if (!(fds[k].revents & POLLIN)) continue;
      const std::size_t i = which[k];
      auto more = devices[i]->read_pushes(kPerDevice - got[i].size(), 1ms);
      total += more.size();
      got[i].insert(got[i].end(), more.begin(), more.end());
    }
  }
  ASSERT_EQ(total, kDevices * kPerDevice) << server_.log().substr(0, 4000);
  for (std::size_t i = 0; i < kDevices; ++i) {
    ASSERT_EQ(got[i].size(), kPerDevice) << "device " << i;
    for (std::size_t n = 0; n < kPerDevice; ++n) {
      EXPECT_EQ(got[i][n].payload, "cmd-" + std::to_string(n)) << "device " << i;
      EXPECT_EQ(got[i][n].device, DeviceId{kBase + i});
      if (n > 0) {
        EXPECT_GT(got[i][n].time, got[i][n - 1].time);
      }
    }
    // Exactly once: nothing beyond the ten.
    EXPECT_TRUE(devices[i]->read_pushes(1, 0ms).empty());
  }
}

TEST_F(PushTest, PushForAnOfflineDeviceIsDeliveredInOrderWhenItLogsIn) {
  server_.push_lines(push_record(kFirstId + 3, "queued-1") + push_record(kFirstId + 3, "queued-2"));
  ASSERT_TRUE(server_.wait_for_log("push queued device=" + std::to_string(kFirstId + 3)));
  auto d = logged_in(server_, *reader_, kFirstId + 3);
  server_.push_lines(push_record(kFirstId + 3, "live-3"));
  auto pushes = d->read_pushes(3);
  ASSERT_EQ(pushes.size(), 3u) << server_.log();
  EXPECT_EQ(pushes[0].payload, "queued-1");
  EXPECT_EQ(pushes[1].payload, "queued-2");
  EXPECT_EQ(pushes[2].payload, "live-3");
  EXPECT_GT(pushes[1].time, pushes[0].time);
}

TEST_F(PushTest, OfflinePushSurvivesAServerRestart) {
  server_.push_lines(push_record(kFirstId + 4, "kept-across-restart"));
  ASSERT_TRUE(server_.wait_for_log("push queued device=" + std::to_string(kFirstId + 4)));
  reader_.reset();
  ASSERT_EQ(server_.stop(SIGTERM), 0);
  server_.start();
  reader_.emplace(server_.inbound_fifo());
  EXPECT_TRUE(server_.wait_for_log("1 pushes wait for their devices"));
  auto d = logged_in(server_, *reader_, kFirstId + 4);
  auto pushes = d->read_pushes(1);
  ASSERT_EQ(pushes.size(), 1u) << server_.log();
  EXPECT_EQ(pushes[0].payload, "kept-across-restart");
}

TEST_F(PushTest, DisablingAConnectedDeviceClosesItWithinASecond) {
  auto d = logged_in(server_, *reader_, kFirstId + 5);
  auto disabled = server_.ctl({"devices", "disable", std::to_string(kFirstId + 5)});
  ASSERT_EQ(disabled.exit_code, 0) << disabled.err;
  EXPECT_TRUE(d->wait_closed(1000ms)) << server_.log();
  EXPECT_TRUE(server_.wait_for_log("device=" + std::to_string(kFirstId + 5)));
  EXPECT_TRUE(server_.wait_for_log("reason=revoked"));
  // And it cannot log in again.
  Device again(server_.port());
  ASSERT_TRUE(again.send_frame(DeviceId{kFirstId + 5}, kKey, "let-me-in"));
  EXPECT_TRUE(again.wait_closed(5s));
  EXPECT_TRUE(server_.wait_for_log("reason=disabled_device"));
}

TEST_F(PushTest, RemovingAConnectedDeviceClosesItWithinASecond) {
  auto d = logged_in(server_, *reader_, kFirstId + 6);
  auto removed = server_.ctl({"devices", "remove", std::to_string(kFirstId + 6)});
  ASSERT_EQ(removed.exit_code, 0) << removed.err;
  EXPECT_TRUE(d->wait_closed(1000ms)) << server_.log();
}

// Its pushes would never go anywhere: they are dropped (and said so) within seconds, and
// the other devices' stay.
TEST_F(PushTest, TheQueuedPushesOfARemovedDeviceAreDropped) {
  const std::string removed_id = std::to_string(kFirstId + 8);
  server_.push_lines(push_record(kFirstId + 8, "never-1") + push_record(kFirstId + 8, "never-2") +
                     push_record(kFirstId + 9, "still-kept"));
  ASSERT_TRUE(server_.wait_for_log_count("push queued device=", 3)) << server_.log();
  auto removed = server_.ctl({"devices", "remove", removed_id});
  ASSERT_EQ(removed.exit_code, 0) << removed.err;
  EXPECT_TRUE(server_.wait_for_log("device=" + removed_id +
                                   " is no longer in the registry: its 2 queued pushes are dropped"))
      << server_.log();
  auto d = logged_in(server_, *reader_, kFirstId + 9);
  auto pushes = d->read_pushes(1);
  ASSERT_EQ(pushes.size(), 1u) << server_.log();
  EXPECT_EQ(pushes[0].payload, "still-kept");
}

TEST_F(PushTest, CtlStatusShowsConnectedDevicesAndCtlPushDelivers) {
  auto d = logged_in(server_, *reader_, kFirstId + 7);
  auto status = server_.ctl({"status"});
  ASSERT_EQ(status.exit_code, 0) << status.err;
  EXPECT_NE(status.out.find(std::to_string(kFirstId + 7)), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("127.0.0.1:"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("\n1 device connected,"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("rejected: none"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("closed: none"), std::string::npos) << status.out;

  // Refusals and closes are counted by reason, summed over the workers.
  for (int i = 0; i < 2; ++i) {
    Device wrong(server_.port());
    ASSERT_TRUE(wrong.send_frame(DeviceId{kFirstId + 8}, "not-its-key", "hello-server"));
    ASSERT_TRUE(wrong.wait_closed(5s));
  }
  {
    auto gone = logged_in(server_, *reader_, kFirstId + 9);
  }
  ASSERT_TRUE(server_.wait_for_log("reason=peer_closed"));
  status = server_.ctl({"status"});
  EXPECT_NE(status.out.find("rejected: wrong_key 2\n"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("closed: peer_closed 1\n"), std::string::npos) << status.out;
  EXPECT_NE(status.out.find("inbound records waiting: 0 bytes in memory"), std::string::npos)
      << status.out;
  // --summary: the counts without the list of devices.
  auto summary = server_.ctl({"status", "--summary"});
  ASSERT_EQ(summary.exit_code, 0) << summary.err;
  EXPECT_EQ(summary.out.find(std::to_string(kFirstId + 7)), std::string::npos) << summary.out;
  EXPECT_EQ(summary.out.find("SINCE"), std::string::npos) << summary.out;  // the list's header
  EXPECT_NE(summary.out.find("rejected: wrong_key 2\n"), std::string::npos) << summary.out;
  EXPECT_NE(summary.out.find("\n1 device connected,"), std::string::npos) << summary.out;

  auto pushed = server_.ctl({"push", std::to_string(kFirstId + 7), "from the operator"});
  ASSERT_EQ(pushed.exit_code, 0) << pushed.err;
  auto pushes = d->read_pushes(1);
  ASSERT_EQ(pushes.size(), 1u) << server_.log();
  EXPECT_EQ(pushes[0].payload, "from the operator");

  auto short_one = server_.ctl({"push", std::to_string(kFirstId + 7), "abc"});
  EXPECT_EQ(short_one.exit_code, 1);
  EXPECT_NE(short_one.err.find("body_too_short"), std::string::npos) << short_one.err;

  // A device that is not in the registry: the command says why and exits 1, sending nothing.
  auto unknown = server_.ctl({"push", "9999999998", "for-nobody"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.err.find("no device 9999999998 in the registry"), std::string::npos) << unknown.err;
  auto after = server_.ctl({"push", std::to_string(kFirstId + 7), "after the refusal"});
  ASSERT_EQ(after.exit_code, 0) << after.err;
  pushes = d->read_pushes(1);
  ASSERT_EQ(pushes.size(), 1u) << server_.log();
  EXPECT_EQ(pushes[0].payload, "after the refusal");
  EXPECT_EQ(server_.log().find("device=9999999998"), std::string::npos) << server_.log();
}

class ExpiringPushTest : public PushTest {
 protected:
  ExpiringPushTest()
      : PushTest(ServerOptions{.extra_yaml = "push: {offline_max_age: 1s, offline_max: 2}\n"}) {}
};

TEST_F(ExpiringPushTest, AnExpiredPushIsLoggedAndNotDelivered) {
  server_.push_lines(push_record(kFirstId + 8, "too-old-by-then"));
  ASSERT_TRUE(server_.wait_for_log("push queued device=" + std::to_string(kFirstId + 8)));
  std::this_thread::sleep_for(1500ms);
  server_.push_lines(push_record(kFirstId + 8, "fresh-one"));
  ASSERT_TRUE(server_.wait_for_log("(2 waiting)"));
  auto d = logged_in(server_, *reader_, kFirstId + 8);
  auto pushes = d->read_pushes(2, 1s);
  ASSERT_EQ(pushes.size(), 1u) << server_.log();
  EXPECT_EQ(pushes[0].payload, "fresh-one");
  EXPECT_TRUE(server_.wait_for_log("expired (push.offline_max_age)"));
}

TEST_F(ExpiringPushTest, BeyondOfflineMaxTheOldestIsEvictedAndLogged) {
  server_.push_lines(push_record(kFirstId + 9, "first-one") + push_record(kFirstId + 9, "second-one") +
                     push_record(kFirstId + 9, "third-one"));
  ASSERT_TRUE(server_.wait_for_log("evicted (push.offline_max reached)"));
  auto d = logged_in(server_, *reader_, kFirstId + 9);
  auto pushes = d->read_pushes(3, 1s);
  ASSERT_EQ(pushes.size(), 2u) << server_.log();
  EXPECT_EQ(pushes[0].payload, "second-one");
  EXPECT_EQ(pushes[1].payload, "third-one");
}

class SmallWriteQueueTest : public PushTest {
 protected:
  SmallWriteQueueTest() : PushTest(ServerOptions{.extra_yaml = "push: {write_queue: 64KiB}\n"}) {}
};

TEST_F(SmallWriteQueueTest, ADeviceThatDoesNotReadIsClosedAndItsUnsentPushesWaitForItsReturn) {
  constexpr int kPushes = 200;
  const std::string filler(30'000, 'z');  // 200 x 30 kB: far beyond socket buffers + 64 KiB
  auto sleeper = logged_in(server_, *reader_, kFirstId + 10);
  std::string text;
  for (int i = 0; i < kPushes; ++i) text += push_record(kFirstId + 10, "n=" + std::to_string(i) + ";" + filler);
  std::thread writer([&] { server_.push_lines(text); });
  ASSERT_TRUE(server_.wait_for_log("reason=write_queue_full", 30s)) << server_.log();
  ASSERT_TRUE(server_.wait_for_log("unsent pushes go back to its offline queue"));
  writer.join();
  // What reached the sleeper's socket before the close, then the rest after it logs in again.
  auto first = sleeper->read_pushes(kPushes, 3s);
  ASSERT_FALSE(first.empty());
  ASSERT_LT(first.size(), static_cast<std::size_t>(kPushes));
  // At once: pushes the master had already sent toward the closed connection are still
  // coming back (the fence makes the new connection wait for them).
  auto again = logged_in(server_, *reader_, kFirstId + 10);
  // Only the one cut short by the close may come again.
  expect_every_push_in_order(first, read_through_last(*again, kPushes), kPushes, 1);
}

// A device that reads nothing, a write queue deep enough to keep its pushes in the worker
// (and an offline queue deep enough to take them all back), and then the worker is killed:
// the master still holds every push the worker had not written whole, and they reach the
// device at its next login.
class DeepWriteQueueTest : public PushTest {
 protected:
  DeepWriteQueueTest()
      : PushTest(ServerOptions{.extra_yaml = "push: {write_queue: 64MiB, offline_max: 1000}\n"}) {}
};

TEST_F(DeepWriteQueueTest, PushesAKilledWorkerHadNotWrittenReachTheDeviceAtItsNextLogin) {
  constexpr int kPushes = 300;
  const std::string filler(30'000, 'k');  // 9 MB: more than the socket buffers take
  const std::uint64_t id = kFirstId + 11;
  auto sleeper = logged_in(server_, *reader_, id);
  auto witness = logged_in(server_, *reader_, kFirstId + 12);
  std::string text;
  for (int i = 0; i < kPushes; ++i) text += push_record(id, "n=" + std::to_string(i) + ";" + filler);
  // The master reads the FIFO in order: once the witness has its push, every push before
  // it has been handed to the sleeper's worker.
  text += push_record(kFirstId + 12, "after-the-others");
  std::thread writer([&] { server_.push_lines(text); });
  ASSERT_EQ(witness->read_pushes(1, 30s).size(), 1u) << server_.log();
  writer.join();

  const auto show = server_.ctl({"devices", "show", std::to_string(id)});
  const auto at = show.out.find("worker_pid: ");
  ASSERT_NE(at, std::string::npos) << show.out;
  const pid_t victim = std::stoi(show.out.substr(at + 12));
  ASSERT_GT(victim, 0);
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  ASSERT_TRUE(server_.wait_for_log("(pid " + std::to_string(victim) + ") died"));

  // What the kernel had buffered before the kill, then the rest after a new login.
  auto first = sleeper->read_pushes(kPushes, 3s);
  ASSERT_LT(first.size(), static_cast<std::size_t>(kPushes)) << "the worker held none";
  ASSERT_TRUE(server_.wait_for_log("pushes the worker had not written go back"));
  auto again = logged_in(server_, *reader_, id);
  // Those written in the worker's last moments (its reports of written pushes go once per
  // loop pass) may come again; none may be lost.
  expect_every_push_in_order(first, read_through_last(*again, kPushes), kPushes, kPushes);
}

// ---- clones ---------------------------------------------------------------------------

// Logs in `pairs` devices twice at once, each pair's two connections on different workers
// (the master alternates), and returns how many of each pair's connections stayed open,
// with the table's view (iotsocketctl status) taken while they are.
struct RaceResult {
  std::vector<int> open;
  std::string status;
};
RaceResult race_duplicate_logins(TestServer& server, std::uint64_t first, std::size_t pairs) {
  std::vector<std::unique_ptr<Device>> a, b;
  for (std::size_t i = 0; i < pairs; ++i) {
    a.push_back(std::make_unique<Device>(server.port()));
    b.push_back(std::make_unique<Device>(server.port()));
  }
  std::atomic<bool> go{false};
  auto send_all = [&](std::vector<std::unique_ptr<Device>>& side) {
    while (!go.load()) std::this_thread::yield();
    for (std::size_t i = 0; i < pairs; ++i) side[i]->send_frame(DeviceId{first + i}, kKey, "racing-login");
  };
  std::thread ta(send_all, std::ref(a));
  std::thread tb(send_all, std::ref(b));
  go = true;
  ta.join();
  tb.join();
  std::this_thread::sleep_for(1500ms);  // the losers' closes, and a replace's check, are done
  RaceResult result{std::vector<int>(pairs, 0), {}};
  for (std::size_t i = 0; i < pairs; ++i) {
    result.open[i] = (a[i]->wait_closed(10ms) ? 0 : 1) + (b[i]->wait_closed(10ms) ? 0 : 1);
  }
  result.status = server.ctl({"status"}).out;
  return result;
}

TEST_F(PushTest, RacingDuplicateLoginsOnTwoWorkersExactlyOneWinsUnderReject) {
  constexpr std::uint64_t kBase = 1300000000;
  server_.add_devices(kBase, 50, kKey);
  const auto race = race_duplicate_logins(server_, kBase, 50);
  for (std::size_t i = 0; i < race.open.size(); ++i) {
    EXPECT_EQ(race.open[i], 1) << "device " << kBase + i;
  }
  EXPECT_EQ(server_.count_in_log("reason=duplicate_login"), 50u);
  EXPECT_TRUE(server_.wait_for_log("already connected from peer=127.0.0.1:"));
  EXPECT_NE(race.status.find("50 devices connected"), std::string::npos) << race.status;
}

class ReplacePushTest : public PushTest {
 protected:
  ReplacePushTest()
      : PushTest(ServerOptions{.devices = "{sqlite: devices.db, duplicate: replace}"}) {}
};

TEST_F(ReplacePushTest, RacingDuplicateLoginsOnTwoWorkersExactlyOneWinsUnderReplace) {
  constexpr std::uint64_t kBase = 1300000000;
  server_.add_devices(kBase, 50, kKey);
  const auto race = race_duplicate_logins(server_, kBase, 50);
  for (std::size_t i = 0; i < race.open.size(); ++i) {
    EXPECT_EQ(race.open[i], 1) << "device " << kBase + i;
  }
  // Each race has one loser: the first login, replaced by the second, or the second, when
  // its frame carries the older TIME (a replay must not displace a live connection).
  EXPECT_EQ(server_.count_in_log("reason=replaced") + server_.count_in_log("reason=replayed_time"),
            50u)
      << server_.log().substr(0, 3000);
  EXPECT_NE(race.status.find("50 devices connected"), std::string::npos) << race.status;
}

TEST_F(ReplacePushTest, PushesGoToTheNewConnection) {
  auto old_one = logged_in(server_, *reader_, kFirstId);
  auto new_one = logged_in(server_, *reader_, kFirstId);
  EXPECT_TRUE(old_one->wait_closed(2s));
  EXPECT_TRUE(server_.wait_for_log("replaces the connection from peer=127.0.0.1:"));
  EXPECT_TRUE(server_.wait_for_log("reason=replaced"));
  server_.push_lines(push_record(kFirstId, "to-the-new-one"));
  auto pushes = new_one->read_pushes(1);
  ASSERT_EQ(pushes.size(), 1u) << server_.log();
  EXPECT_EQ(pushes[0].payload, "to-the-new-one");
}

// ---- worker death ---------------------------------------------------------------------

TEST_F(PushTest, SigkillOfAWorkerUnderLoadFreesItsDevicesAndOthersKeepGoing) {
  constexpr std::size_t kDevices = 20;
  std::vector<std::unique_ptr<Device>> devices;
  for (std::size_t i = 0; i < kDevices; ++i) devices.push_back(logged_in(server_, *reader_, kFirstId + i));
  const pid_t victim = server_.worker_pid(0);
  ASSERT_GT(victim, 0);
  ASSERT_EQ(::kill(victim, SIGKILL), 0);
  ASSERT_TRUE(server_.wait_for_log("worker 0 (pid " + std::to_string(victim) + ") died"));
  ASSERT_TRUE(server_.wait_for_log("devices released from the device table"));

  std::vector<std::size_t> lost, kept;
  for (std::size_t i = 0; i < kDevices; ++i) {
    (devices[i]->wait_closed(200ms) ? lost : kept).push_back(i);
  }
  ASSERT_FALSE(lost.empty());
  ASSERT_FALSE(kept.empty());
  // The devices of the live worker noticed nothing.
  for (std::size_t i : kept) ASSERT_TRUE(devices[i]->send_frame(DeviceId{kFirstId + i}, kKey, "still-here"));
  ASSERT_EQ(reader_->read(kept.size()).size(), kept.size()) << server_.log();
  // No stale entries: exactly the kept devices are in the table.
  auto status = server_.ctl({"status"});
  EXPECT_NE(status.out.find(std::to_string(kept.size()) + " devices connected"), std::string::npos)
      << status.out;
  // The lost ones reconnect at once and are served (by the respawned worker or the other).
  ASSERT_TRUE(server_.wait_for_log("worker 0 ready"));
  for (std::size_t i : lost) devices[i] = logged_in(server_, *reader_, kFirstId + i);
  for (std::size_t i = 0; i < kDevices; ++i) {
    server_.push_lines(push_record(kFirstId + i, "after-the-crash"));
    auto pushes = devices[i]->read_pushes(1);
    ASSERT_EQ(pushes.size(), 1u) << "device " << i << "\n" << server_.log();
  }
}

}  // namespace
}  // namespace iotsocket::e2e
