// The inbound path end to end: many devices on two workers, large records, a backend that
// is absent or slow, a restart in the middle. Nothing may be lost, duplicated, interleaved
// or reordered per device.
#include <gtest/gtest.h>

#include <future>
#include <map>
#include <regex>
#include <thread>

#include "tests/e2e/harness.hpp"

namespace iotsocket::e2e {
namespace {

using protocol::DeviceId;

constexpr std::uint64_t kFirstId = 2000000000;
const std::string kKey = "fleet-key-0123456789";

// A payload that proves its own integrity: "<id>:<seq>:" then filler derived from both,
// so that a record cut or spliced with another does not check out.
std::string payload_for(std::uint64_t id, int seq, std::size_t size) {
  std::string p = std::to_string(id) + ":" + std::to_string(seq) + ":";
  const char base = static_cast<char>('a' + (id + static_cast<std::uint64_t>(seq)) % 26);
  while (p.size() < size) p += static_cast<char>(base + static_cast<char>(p.size() % 7));
  return p;
}

struct Tally {
  std::map<std::uint64_t, std::vector<int>> seqs;  // per device, in arrival order
  std::size_t corrupt = 0;
};

Tally check(const std::vector<protocol::Record>& records, std::size_t payload_size) {
  Tally t;
  for (const auto& r : records) {
    const std::string& p = r.payload;
    auto first = p.find(':');
    auto second = p.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) {
      ++t.corrupt;
      continue;
    }
    const std::uint64_t id = std::stoull(p.substr(0, first));
    const int seq = std::stoi(p.substr(first + 1, second - first - 1));
    if (id != r.device.value || p != payload_for(id, seq, payload_size)) {
      ++t.corrupt;
      continue;
    }
    t.seqs[id].push_back(seq);
  }
  return t;
}

void expect_complete_and_ordered(const Tally& t, std::size_t devices, int frames) {
  EXPECT_EQ(t.corrupt, 0u);
  EXPECT_EQ(t.seqs.size(), devices);
  for (const auto& [id, seqs] : t.seqs) {
    std::vector<int> expected(static_cast<std::size_t>(frames));
    for (int i = 0; i < frames; ++i) expected[static_cast<std::size_t>(i)] = i;
    EXPECT_EQ(seqs, expected) << "device " << id;
  }
}

// Opens `devices` connections, then sends `frames` rounds of one frame per device.
// Returns the number of frames sent.
std::size_t run_fleet(std::uint16_t port, std::size_t devices, int frames, std::size_t payload_size,
                      int first_seq = 0) {
  std::vector<std::unique_ptr<Device>> fleet;
  for (std::size_t i = 0; i < devices; ++i) {
    // Spread over source addresses, as a fleet behind many routers would be.
    const std::string source = "127.0." + std::to_string(1 + i / 250) + "." + std::to_string(1 + i % 250);
    fleet.push_back(std::make_unique<Device>(port, true, source));
    if (!fleet.back()->connected()) return 0;
  }
  std::size_t sent = 0;
  for (int seq = first_seq; seq < first_seq + frames; ++seq) {
    for (std::size_t i = 0; i < devices; ++i) {
      const std::uint64_t id = kFirstId + i;
      if (fleet[i]->send_frame(DeviceId{id}, kKey, payload_for(id, seq, payload_size))) ++sent;
    }
  }
  return sent;
}

class InboundTest : public ::testing::Test {
 protected:
  void SetUp() override { server_.add_devices(kFirstId, 1000, kKey); }
  TestServer server_;
};

TEST_F(InboundTest, ThousandDevicesOnTwoWorkersTenFramesEachNothingLostOrInterleaved) {
  server_.start();
  InboundReader reader(server_.inbound_fifo());
  auto reading = std::async(std::launch::async, [&] { return reader.read(10'000, 120s); });
  EXPECT_EQ(run_fleet(server_.port(), 1000, 10, 64), 10'000u);
  auto records = reading.get();
  EXPECT_EQ(records.size(), 10'000u);
  EXPECT_TRUE(reader.bad_lines().empty());
  expect_complete_and_ordered(check(records, 64), 1000, 10);
  // Both workers took a share.
  EXPECT_GE(server_.count_in_log("worker 0: login"), 100u);
  EXPECT_GE(server_.count_in_log("worker 1: login"), 100u);
}

TEST_F(InboundTest, SixtyKilobyteRecordsFromManyDevicesNeverInterleave) {
  server_.start();
  InboundReader reader(server_.inbound_fifo());
  auto reading = std::async(std::launch::async, [&] { return reader.read(1'000, 120s); });
  EXPECT_EQ(run_fleet(server_.port(), 100, 10, 60'000), 1'000u);
  auto records = reading.get();
  EXPECT_EQ(records.size(), 1'000u);
  EXPECT_TRUE(reader.bad_lines().empty());
  expect_complete_and_ordered(check(records, 60'000), 100, 10);
}

// Every device was closed after its last frame (so each frame was accepted), and no record
// waits in a worker's memory: they are all in the spool, as `iotsocketctl status` says.
bool everything_spooled(const TestServer& server, std::size_t devices) {
  if (!server.wait_for_log_count("closed device=", devices, 30s)) return false;
  const std::regex spooled("inbound records waiting: 0 bytes in memory, [1-9][0-9]* bytes in the spool");
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (std::chrono::steady_clock::now() < deadline) {
    if (std::regex_search(server.ctl({"status", "--summary"}).out, spooled)) return true;
    std::this_thread::sleep_for(100ms);
  }
  return false;
}

TEST_F(InboundTest, BackendAbsentThenAttachesEveryRecordArrivesInOrder) {
  server_.start();
  // No reader: the records go to the spool, all of them before the backend comes.
  EXPECT_EQ(run_fleet(server_.port(), 200, 10, 200), 2'000u);
  ASSERT_TRUE(everything_spooled(server_, 200)) << server_.ctl({"status", "--summary"}).out;
  InboundReader reader(server_.inbound_fifo());
  auto records = reader.read(2'000, 60s);
  EXPECT_EQ(records.size(), 2'000u);
  expect_complete_and_ordered(check(records, 200), 200, 10);
  EXPECT_TRUE(reader.read(1, 500ms).empty()) << "duplicates";
}

TEST_F(InboundTest, SpooledRecordsSurviveARestartAndComeFirst) {
  server_.start();
  EXPECT_EQ(run_fleet(server_.port(), 100, 5, 300), 500u);
  // Stop with nobody reading: the records are in the spool on disk.
  ASSERT_EQ(server_.stop(), 0);
  server_.start();
  EXPECT_EQ(run_fleet(server_.port(), 100, 5, 300, /*first_seq=*/5), 500u);
  InboundReader reader(server_.inbound_fifo());
  auto records = reader.read(1'000, 60s);
  EXPECT_EQ(records.size(), 1'000u);
  expect_complete_and_ordered(check(records, 300), 100, 10);
}

}  // namespace
}  // namespace iotsocket::e2e
