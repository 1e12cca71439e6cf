#include <algorithm>
#include <chrono>
#include <cstdint>
#include <utility>
#include <vector>

#include <fmt/chrono.h>
#include <fmt/core.h>

#include "common/counted.hpp"
#include "ctl/devices.hpp"
#include "ctl/server.hpp"
#include "ctl/time_text.hpp"
#include "shm/device_table.hpp"
#include "shm/worker_counters.hpp"
#include "shm/worker_totals.hpp"

namespace iotsocket::ctl {
namespace {

using shm::WorkerCounters;

void print_devices(std::vector<shm::DeviceSnapshot>& devices) {
  std::sort(devices.begin(), devices.end(),
            [](const shm::DeviceSnapshot& a, const shm::DeviceSnapshot& b) { return a.id < b.id; });
  constexpr std::string_view kRow = "{:<10}  {:>6}  {:<40}  {}\n";
  fmt::print(kRow, "DEVICE", "WORKER", "PEER", "SINCE");
  for (const auto& d : devices) {
    fmt::print(kRow, protocol::to_string(d.id), d.holder.worker, d.peer.to_string(),
               iso_utc(d.since_unix));
  }
  fmt::print("\n");
}

void print_workers(const shm::DeviceTable& table) {
  constexpr std::string_view kRow =
      "{:>6}  {:>8}  {:>11}  {:>7}  {:>8}  {:>12}  {:>10}  {:>14}  {:>14}\n";
  fmt::print(kRow, "WORKER", "PID", "CONNECTIONS", "DEVICES", "LOGINS", "FRAMES_IN", "PUSHES_OUT",
             "BYTES_IN", "BYTES_OUT");
  for (std::uint32_t w = 0; w < table.workers(); ++w) {
    const WorkerCounters& c = table.counters(w);
    fmt::print(kRow, w, c.pid.load(), WorkerCounters::get(c.connections),
               WorkerCounters::get(c.devices), WorkerCounters::get(c.logins),
               WorkerCounters::get(c.frames_in), WorkerCounters::get(c.pushes_out),
               WorkerCounters::get(c.bytes_in), WorkerCounters::get(c.bytes_out));
  }
}

// "rejected: wrong_key 2, time_skew 1" and "closed: peer_closed 5, ...", since the server
// started, most frequent first (README "Reason codes").
void print_reasons(const shm::WorkerTotals& totals) {
  std::vector<std::pair<std::uint64_t, std::size_t>> rejected, closed;
  for (std::size_t i = 0; i < shm::kCloseReasonCount; ++i) {
    const std::uint64_t count = totals.closes[i];
    if (count > 0) (shm::kCloseReasons[i].rejection ? rejected : closed).emplace_back(count, i);
  }
  auto print = [](std::string_view label, auto& counts) {
    std::stable_sort(counts.begin(), counts.end(),
                     [](const auto& a, const auto& b) { return a.first > b.first; });
    fmt::print("{}:", label);
    if (counts.empty()) fmt::print(" none");
    for (std::size_t k = 0; k < counts.size(); ++k) {
      fmt::print("{} {} {}", k == 0 ? "" : ",", shm::kCloseReasons[counts[k].second].name,
                 counts[k].first);
    }
    fmt::print("\n");
  };
  print("rejected", rejected);
  print("closed", closed);
}

}  // namespace

int status(const config::Config& config, bool summary) {
  auto table = shm::DeviceTable::attach(config.runtime.shm_name);
  if (!table) return fail(table.error());
  auto devices = table->connected();
  if (!summary) print_devices(devices);
  print_workers(*table);
  const shm::WorkerTotals totals = shm::sum_workers(*table);
  fmt::print("inbound records waiting: {} bytes in memory, {} bytes in the spool\n",
             totals.memory_bytes, totals.spool_bytes);
  print_reasons(totals);
  fmt::print("\n{} connected, master pid {}\n", counted(devices.size(), "device", "devices"),
             table->master_pid());
  return kExitOk;
}

int close_live(const config::Config& config, protocol::DeviceId id) {
  auto table = shm::DeviceTable::attach(config.runtime.shm_name);
  if (!table) return kExitOk;  // no server running: nothing is connected
  if (!table->holder(id)) return kExitOk;
  table->request_close(id);
  fmt::print("closing the live connection of device {}\n", protocol::to_string(id));
  return kExitOk;
}

}  // namespace iotsocket::ctl
