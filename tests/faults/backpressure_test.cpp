// Fault row "back-pressure" (docs/PRESSURE.md): the spool at spool.max_size and no backend
// for 30 s while 50 devices keep sending 10 frames/s. The workers stop reading devices;
// their frames wait in the sockets. When the backend comes, every frame written must reach
// the inbound FIFO once, in order per device, although most of them waited far longer than
// the 3 s time tolerance: the server judges a frame by when it came, not by when it got
// round to reading it. The log and the metrics must say that back-pressure was on, why,
// and for how long.
#include <gtest/gtest.h>

#include <iostream>
#include <map>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "tests/e2e/harness.hpp"

namespace iotsocket::e2e {
namespace {

using protocol::DeviceId;

constexpr std::uint64_t kFirstId = 5000000000;
const std::string kKey = "pressure-key-01";
constexpr std::size_t kDevices = 50;
constexpr auto kNoBackend = 30s;
constexpr auto kFrameEvery = 100ms;  // 10 frames/s per device

// About 100 bytes: the sink and the spool fill within seconds, and 27 s of a device's
// frames (50 KB) wait in its socket's buffers without blocking the device.
std::string payload_for(std::uint64_t id, int seq) {
  return "d" + std::to_string(id) + " seq " + std::to_string(seq) + " " + std::string(70, 'x');
}

// Device -> sequence numbers in the order the inbound FIFO gave them; -1 for the login.
std::map<std::uint64_t, std::vector<int>> by_device(const std::vector<protocol::Record>& records) {
  std::map<std::uint64_t, std::vector<int>> seen;
  for (const protocol::Record& r : records) {
    const std::string prefix = "d" + std::to_string(r.device.value) + " seq ";
    if (r.payload.rfind(prefix, 0) == 0) {
      const int seq = std::stoi(r.payload.substr(prefix.size()));
      seen[r.device.value].push_back(r.payload == payload_for(r.device.value, seq) ? seq : -2);
    } else {
      seen[r.device.value].push_back(-1);
    }
  }
  return seen;
}

double sample(const Samples& samples, const std::string& name) {
  const auto it = samples.find(name);
  return it == samples.end() ? -1 : it->second;
}

ServerOptions pressure_options() {
  ServerOptions o;
  // The spool and the workers' memory (64 KiB + 2 x 256 KiB) fill within 6 s at this rate.
  o.spool = "{dir: spool, max_size: 64KiB, memory: 256KiB}";
  o.log = "{level: info}";
  o.extra_yaml = "metrics: {listen: \"127.0.0.1:0\"}\n";
  return o;
}

TEST(BackPressureFault, SpoolAtItsBoundAndNoBackendFor30sLosesNothingAndSaysSo) {
  TestServer server(pressure_options());
  server.add_devices(kFirstId, kDevices, kKey);
  server.start();

  std::vector<std::unique_ptr<Device>> fleet;
  std::vector<int> sent(kDevices, 0);  // frames each device wrote (after its login)
  for (std::size_t i = 0; i < kDevices; ++i) {
    fleet.push_back(std::make_unique<Device>(server.port()));
    ASSERT_TRUE(fleet.back()->connected());
    ASSERT_TRUE(fleet.back()->send_frame(DeviceId{kFirstId + i}, kKey, "login"));
  }
  // No reader on the inbound FIFO for 30 s: the spool fills, then the workers stop reading.
  const auto until = Clock::now() + kNoBackend;
  for (int seq = 0; Clock::now() < until; ++seq) {
    const auto round = Clock::now();
    for (std::size_t i = 0; i < kDevices; ++i) {
      if (sent[i] == seq && fleet[i]->send_frame(DeviceId{kFirstId + i}, kKey, payload_for(kFirstId + i, seq))) {
        ++sent[i];
      }
    }
    std::this_thread::sleep_until(round + kFrameEvery);
  }
  ASSERT_TRUE(server.wait_for_log("inbound back-pressure on: ", 1s)) << server.log();
  const std::string on_line = server.log().substr(server.log().find("inbound back-pressure on: "), 300);
  EXPECT_NE(on_line.find("no backend reads the inbound FIFO"), std::string::npos) << on_line;
  EXPECT_NE(on_line.find("spool.max_size"), std::string::npos) << on_line;
  const Samples during = parse_with_prometheus_client(http_get(metrics_port(server), "/metrics").body);
  EXPECT_GT(sample(during, "iotsocket_inbound_paused_connections"), 0) << "devices not read now";

  // The backend comes: everything that was written arrives.
  std::size_t total = kDevices;  // the logins
  for (int n : sent) total += static_cast<std::size_t>(n);
  InboundReader reader(server.inbound_fifo());
  const auto records = reader.read(total, 120s);
  EXPECT_EQ(records.size(), total);
  EXPECT_TRUE(reader.read(1, 1s).empty()) << "a record came twice";
  const auto seen = by_device(records);
  for (std::size_t i = 0; i < kDevices; ++i) {
    std::vector<int> expected{-1};
    for (int seq = 0; seq < sent[i]; ++seq) expected.push_back(seq);
    const auto it = seen.find(kFirstId + i);
    ASSERT_NE(it, seen.end()) << "device " << kFirstId + i << " lost everything";
    EXPECT_EQ(it->second, expected) << "device " << kFirstId + i << " wrote " << sent[i];
  }
  EXPECT_GE(total, kDevices * 250) << "the devices could not write at their pace";
  EXPECT_EQ(server.count_in_log("reason=time_skew"), 0u);
  EXPECT_EQ(server.count_in_log("rejected"), 0u);
  for (auto& device : fleet) EXPECT_FALSE(device->wait_closed(10ms)) << "a device was closed";

  // Both workers were held back for most of the 30 s, and say so.
  ASSERT_TRUE(server.wait_for_log_count("inbound back-pressure off after ", 2, 10s)) << server.log();
  const std::regex off(R"(inbound back-pressure off after ([0-9.]+) s)");
  const std::string log = server.log();
  for (auto it = std::sregex_iterator(log.begin(), log.end(), off); it != std::sregex_iterator(); ++it) {
    EXPECT_GT(std::stod((*it)[1]), 15.0) << (*it)[0];
    std::cout << (*it)[0] << "\n";
  }
  const Samples after = parse_with_prometheus_client(http_get(metrics_port(server), "/metrics").body);
  EXPECT_GT(sample(after, "iotsocket_inbound_backpressure_seconds_total"), 2 * 15.0);
  EXPECT_EQ(sample(after, "iotsocket_inbound_paused_connections"), 0);
  std::cout << total << " records written and read in order; back-pressure "
            << sample(after, "iotsocket_inbound_backpressure_seconds_total") << " worker-seconds\n";
}

}  // namespace
}  // namespace iotsocket::e2e
