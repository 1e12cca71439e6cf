// Fault row "memory after floods" (docs/PRESSURE.md): four waves of 15,000 TLS logins, each
// closed after a second. Once the load is gone the server must be back within 2x of the
// memory it started with (before: 85 MB at start, 883-892 MB after four waves, by RSS).
// Memory is PSS summed over the master and its workers (/proc/PID/smaps_rollup): the device
// table is one shared segment, which RSS would count once per process that touched it.
// Only in an optimised build (label `release`): a sanitizer's allocator keeps freed memory
// in quarantine by design.
#include <gtest/gtest.h>

#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/e2e/harness.hpp"

namespace iotsocket::e2e {
namespace {

constexpr std::uint64_t kFirstId = 7000000000;
constexpr std::size_t kWave = 15'000;
const std::string kKey = "memory-key-0001";

// PSS in KiB of one process (0 when it is gone).
std::uint64_t pss_kib(pid_t pid) {
  std::ifstream rollup("/proc/" + std::to_string(pid) + "/smaps_rollup");
  std::string key;
  std::uint64_t value = 0;
  while (rollup >> key) {
    if (key == "Pss:" && rollup >> value) return value;
    rollup.ignore(4096, '\n');
  }
  return 0;
}

std::uint64_t server_pss_kib(const TestServer& server) {
  std::uint64_t total = pss_kib(server.pid());
  std::istringstream children(run_command({"/usr/bin/pgrep", "-P", std::to_string(server.pid())}).out);
  for (pid_t child = 0; children >> child;) total += pss_kib(child);
  return total;
}

RunResult run_wave(std::uint16_t port) {
  return run_command({binary("iotsocket-bench"), "--port", std::to_string(port), "--devices",
                      std::to_string(kWave), "--first-id", std::to_string(kFirstId), "--key", kKey,
                      "--connect-rate", "7500", "--source-ips", "29", "--threads", "2",
                      "--duration", "40", "--linger", "1", "--json"});
}

TEST(MemoryFault, AfterFourFloodWavesTheServerIsWithinTwiceItsStartingMemory) {
  ServerOptions options;
  options.limits = "{max_connections: 20000, per_ip: 1000}";
  options.log = "{level: info}";
  TestServer server(options);
  server.add_devices(kFirstId, kWave, kKey);
  server.start();
  std::this_thread::sleep_for(1s);
  const std::uint64_t start = server_pss_kib(server);
  ASSERT_GT(start, 0u);
  std::vector<std::uint64_t> after;
  for (int wave = 1; wave <= 4; ++wave) {
    const RunResult r = run_wave(server.port());
    // Its exit code says whether every connection got up; in a flood some are shed.
    ASSERT_NE(r.out.find("\"up\":"), std::string::npos) << r.out << r.err;
    // Closed connections are given back at the workers' next trim (at most 10 s apart).
    std::uint64_t now = server_pss_kib(server);
    for (const auto until = Clock::now() + 30s; now > 2 * start && Clock::now() < until;) {
      std::this_thread::sleep_for(1s);
      now = server_pss_kib(server);
    }
    after.push_back(now);
    std::cout << "after wave " << wave << ": " << now << " KiB PSS (start " << start << " KiB); "
              << r.out.substr(0, r.out.find("\"frames\"")) << "\n";
  }
  for (std::size_t i = 0; i < after.size(); ++i) {
    EXPECT_LE(after[i], 2 * start) << "after wave " << i + 1;
  }
}

}  // namespace
}  // namespace iotsocket::e2e
