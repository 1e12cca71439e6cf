// SIGTERM (issue 6): the server stops accepting, closes its connections one by one spread
// over shutdown.drain, places every frame it accepted in the inbound FIFO or the spool,
// and exits 0; a second signal closes the rest at once.
#include <signal.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "tests/e2e/harness.hpp"

namespace iotsocket::e2e {
namespace {

constexpr std::uint64_t kFirst = 1500000000;
const std::string kKey = "shutdown-test-key-01";

// Reads the inbound FIFO on a thread for as long as it lives.
class BackgroundReader {
 public:
  explicit BackgroundReader(const std::string& fifo) : reader_(fifo), thread_([this] { loop(); }) {}
  ~BackgroundReader() {
    done_ = true;
    thread_.join();
  }
  std::vector<protocol::Record> records() const {
    std::lock_guard lock(mutex_);
    return records_;
  }
  std::size_t count() const {
    std::lock_guard lock(mutex_);
    return records_.size();
  }

 private:
  void loop() {
    while (!done_) {
      auto batch = reader_.read(1'000'000, 50ms);
      std::lock_guard lock(mutex_);
      records_.insert(records_.end(), batch.begin(), batch.end());
    }
  }
  InboundReader reader_;
  mutable std::mutex mutex_;
  std::vector<protocol::Record> records_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

// A frame's payload: its number, at least 5 bytes as IOT/1.1 wants.
std::string frame_text(std::uint64_t n) { return "frame " + std::to_string(n); }

// A device's next TIME: now, or just above its last one. Per device: one stamper shared
// by 500 fast senders would run ahead of the clock.
protocol::Time next_time(protocol::Time& last) {
  last = std::max(protocol::to_time(std::chrono::system_clock::now()), last + protocol::Tick(1));
  return last;
}

// "2026-12-01T02:37:59.340 ..." -> milliseconds since midnight.
std::int64_t log_ms(std::string_view line) {
  const int h = std::stoi(std::string(line.substr(11, 2)));
  const int m = std::stoi(std::string(line.substr(14, 2)));
  const int s = std::stoi(std::string(line.substr(17, 2)));
  const int ms = std::stoi(std::string(line.substr(20, 3)));
  return ((h * 60 + m) * 60 + s) * 1000LL + ms;
}

std::vector<std::string> lines_with(const std::string& log, std::string_view needle) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start < log.size()) {
    std::size_t end = log.find('\n', start);
    if (end == std::string::npos) end = log.size();
    std::string line = log.substr(start, end - start);
    if (line.find(needle) != std::string::npos) out.push_back(std::move(line));
    start = end + 1;
  }
  return out;
}

// Sum of N over the workers' "stopped: N frames accepted" lines.
std::uint64_t frames_accepted(const std::string& log) {
  std::uint64_t total = 0;
  for (const std::string& line : lines_with(log, "stopped: ")) {
    const auto at = line.find("stopped: ") + 9;
    if (line.find(" frames accepted", at) != std::string::npos) total += std::stoull(line.substr(at));
  }
  return total;
}

TEST(Shutdown, FiveHundredSendingDevicesAreClosedOverTheDrainPeriodAndNoAcceptedFrameIsLost) {
  constexpr std::size_t kDevices = 500;
  constexpr auto kDrain = 3s;
  ServerOptions options;
  options.workers = 2;
  options.log = "{level: info}";
  options.extra_yaml = "shutdown: {drain: 3s}\n";
  TestServer server(options);
  server.add_devices(kFirst, kDevices, kKey);
  server.start();
  BackgroundReader reader(server.inbound_fifo());

  std::vector<std::unique_ptr<Device>> devices;
  std::vector<std::uint64_t> sent(kDevices, 0);
  std::vector<protocol::Time> last_time(kDevices);
  for (std::size_t i = 0; i < kDevices; ++i) {
    devices.push_back(std::make_unique<Device>(server.port()));
    ASSERT_TRUE(devices.back()->send_frame(protocol::DeviceId{kFirst + i}, kKey, frame_text(0),
                                           next_time(last_time[i])))
        << server.log();
    sent[i] = 1;
  }
  // Every device sends a numbered frame per round; SIGTERM comes after a few rounds, and
  // the rounds go on (bounded) until the server has closed every connection.
  Clock::time_point signalled{};
  std::size_t open = kDevices;
  for (int round = 0; open > 0 && round < 2000; ++round) {
    if (round == 5) {
      ASSERT_EQ(::kill(server.pid(), SIGTERM), 0);
      signalled = Clock::now();
    }
    if (signalled != Clock::time_point{} && Clock::now() - signalled > kDrain + 10s) break;
    for (std::size_t i = 0; i < kDevices; ++i) {
      if (!devices[i]) continue;
      if (devices[i]->send_frame(protocol::DeviceId{kFirst + i}, kKey, frame_text(sent[i]),
                                 next_time(last_time[i]))) {
        ++sent[i];
      } else {
        devices[i].reset();
        --open;
      }
    }
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(open, 0u) << "devices still connected long after the drain period";
  const int code = server.stop(0);  // signal 0: only waits for the exit
  const auto exited_after = Clock::now() - signalled;
  EXPECT_EQ(code, 0) << server.log();
  EXPECT_LT(exited_after, kDrain + 5s);
  const std::string log = server.log();

  // Drain period respected: the closes spread over it, not all at the signal.
  const auto stop_lines = lines_with(log, ": stopping");
  ASSERT_FALSE(stop_lines.empty()) << log;
  const std::int64_t t0 = log_ms(stop_lines.front());
  std::vector<std::int64_t> closes;
  for (const auto& line : lines_with(log, "reason=server_shutdown")) closes.push_back(log_ms(line) - t0);
  ASSERT_GE(closes.size(), kDevices * 9 / 10) << log;
  std::sort(closes.begin(), closes.end());
  const auto drain_ms = std::chrono::duration_cast<std::chrono::milliseconds>(kDrain).count();
  EXPECT_GE(closes.back(), drain_ms * 7 / 10) << "the last close came too soon";
  EXPECT_LE(closes.back(), drain_ms + 1000) << "the last close came after the drain period";
  const auto first_half = std::count_if(closes.begin(), closes.end(),
                                        [&](std::int64_t t) { return t < drain_ms / 2; });
  EXPECT_GT(first_half, static_cast<std::ptrdiff_t>(closes.size() / 4));
  EXPECT_LT(first_half, static_cast<std::ptrdiff_t>(closes.size() * 3 / 4));

  // Every accepted frame is in the FIFO or the spool: the spool's share comes out when the
  // server starts again.
  const std::uint64_t accepted = frames_accepted(log);
  ASSERT_EQ(lines_with(log, " frames accepted").size(), 2u) << log;
  ASSERT_GT(accepted, kDevices * 5);
  server.start();
  for (auto deadline = Clock::now() + 20s; reader.count() < accepted && Clock::now() < deadline;) {
    std::this_thread::sleep_for(50ms);
  }
  const auto records = reader.records();
  EXPECT_EQ(records.size(), accepted);
  // Per device, the frames arrived in order with none missing: 0, 1, 2, ...
  std::map<std::uint64_t, std::uint64_t> next;
  for (const auto& r : records) {
    auto& expected = next[r.device.value];
    ASSERT_EQ(r.payload, frame_text(expected)) << "device " << r.device.value;
    ++expected;
  }
  for (std::size_t i = 0; i < kDevices; ++i) EXPECT_LE(next[kFirst + i], sent[i]);
  std::cout << "drain of " << closes.size() << " connections: first close " << closes.front()
            << " ms, median " << closes[closes.size() / 2] << " ms, last " << closes.back()
            << " ms after the signal (drain 3000 ms); exit after "
            << std::chrono::duration_cast<std::chrono::milliseconds>(exited_after).count()
            << " ms; " << accepted << " frames accepted, " << records.size() << " delivered\n";
}

// Pushes written by the backend during the drain reach the devices still connected; those
// for devices already closed wait in the offline queue for their next login.
TEST(Shutdown, PushesDuringTheDrainAreDeliveredOrQueuedNeverLost) {
  constexpr std::size_t kCount = 10;
  ServerOptions options;
  options.extra_yaml = "shutdown: {drain: 2s}\n";
  TestServer server(options);
  server.add_devices(kFirst, kCount, kKey);
  server.start();
  server.keep_port();
  std::vector<std::unique_ptr<Device>> devices;
  for (std::size_t i = 0; i < kCount; ++i) {
    devices.push_back(std::make_unique<Device>(server.port()));
    ASSERT_TRUE(devices.back()->send_frame(protocol::DeviceId{kFirst + i}, kKey, "hello"));
  }
  ASSERT_TRUE(server.wait_for_log("login device=" + std::to_string(kFirst + kCount - 1)));
  ASSERT_EQ(::kill(server.pid(), SIGTERM), 0);
  ASSERT_TRUE(server.wait_for_log("stopping: closing")) << server.log();
  std::string lines;
  for (std::size_t i = 0; i < kCount; ++i) lines += std::to_string(kFirst + i) + " during the drain\n";
  server.push_lines(lines);
  std::size_t during = 0;
  std::vector<std::size_t> missed;
  for (std::size_t i = 0; i < kCount; ++i) {
    auto got = devices[i]->read_pushes(1, 3s);
    if (got.size() == 1 && got[0].payload == "during the drain") {
      ++during;
    } else {
      missed.push_back(i);
    }
  }
  EXPECT_EQ(server.stop(0), 0) << server.log();
  EXPECT_GT(during, 0u) << "no device still connected got its push: " << server.log();
  // Every push written during the drain was reported to the master before the workers
  // exited: none is put back to come a second time.
  EXPECT_EQ(server.count_in_log("pushes the worker had not written"), 0u) << server.log();
  // The rest come at the next login.
  devices.clear();
  server.start();
  for (std::size_t i = 0; i < kCount; ++i) {
    if (std::find(missed.begin(), missed.end(), i) != missed.end()) continue;
    Device again(server.port());
    ASSERT_TRUE(again.send_frame(protocol::DeviceId{kFirst + i}, kKey, "back again"));
    EXPECT_TRUE(again.read_pushes(1, 300ms).empty()) << "device " << kFirst + i << " got it twice";
  }
  for (std::size_t i : missed) {
    Device again(server.port());
    ASSERT_TRUE(again.send_frame(protocol::DeviceId{kFirst + i}, kKey, "back again"));
    auto got = again.read_pushes(1, 5s);
    ASSERT_EQ(got.size(), 1u) << "device " << kFirst + i << ": " << server.log();
    EXPECT_EQ(got[0].payload, "during the drain");
  }
  std::cout << during << " of " << kCount << " pushes delivered during the drain, "
            << missed.size() << " at the next login\n";
}

TEST(Shutdown, ASecondSignalClosesEverythingAtOnce) {
  ServerOptions options;
  options.extra_yaml = "shutdown: {drain: 10m}\n";
  TestServer server(options);
  server.add_devices(kFirst, 20, kKey);
  server.start();
  BackgroundReader reader(server.inbound_fifo());
  std::vector<std::unique_ptr<Device>> devices;
  for (std::size_t i = 0; i < 20; ++i) {
    devices.push_back(std::make_unique<Device>(server.port()));
    ASSERT_TRUE(devices.back()->send_frame(protocol::DeviceId{kFirst + i}, kKey, "hello"));
  }
  ASSERT_EQ(::kill(server.pid(), SIGTERM), 0);
  ASSERT_TRUE(server.wait_for_log("closing 10 connections over 600000 ms")) << server.log();
  const auto second = Clock::now();
  const int code = server.stop(SIGTERM);
  EXPECT_EQ(code, 0) << server.log();
  EXPECT_LT(Clock::now() - second, 5s);
  EXPECT_EQ(server.count_in_log("second stop signal"), 1u);
  EXPECT_EQ(server.count_in_log("reason=server_shutdown"), 20u) << server.log();
  for (auto& d : devices) EXPECT_TRUE(d->wait_closed(1s));
  EXPECT_EQ(frames_accepted(server.log()), 20u);
  server.start();  // what went to the spool comes out now
  for (auto deadline = Clock::now() + 10s; reader.count() < 20 && Clock::now() < deadline;) {
    std::this_thread::sleep_for(20ms);
  }
  EXPECT_EQ(reader.count(), 20u) << server.log();
}

}  // namespace
}  // namespace iotsocket::e2e
