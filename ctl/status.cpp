#include <algorithm>
#include <chrono>
#include <cstdint>

#include <fmt/chrono.h>
#include <fmt/core.h>

#include "ctl/devices.hpp"
#include "ctl/server.hpp"
#include "ctl/time_text.hpp"
#include "shm/device_table.hpp"

namespace iotsocket::ctl {

int status(const config::Config& config) {
  auto table = shm::DeviceTable::attach(config.runtime.shm_name);
  if (!table) return fail(table.error());
  auto devices = table->connected();
  std::sort(devices.begin(), devices.end(),
            [](const shm::DeviceSnapshot& a, const shm::DeviceSnapshot& b) { return a.id < b.id; });
  constexpr std::string_view kRow = "{:<10}  {:>6}  {:<40}  {}\n";
  fmt::print(kRow, "DEVICE", "WORKER", "PEER", "SINCE");
  for (const auto& d : devices) {
    fmt::print(kRow, protocol::to_string(d.id), d.holder.worker, d.peer.to_string(),
               iso_utc(d.since_unix));
  }
  fmt::print("\n{:>6}  {:>8}  {:>11}  {:>7}  {:>12}  {:>10}\n", "WORKER", "PID", "CONNECTIONS",
             "DEVICES", "FRAMES_IN", "PUSHES_OUT");
  for (std::uint32_t w = 0; w < table->workers(); ++w) {
    const shm::WorkerCounters& c = table->counters(w);
    fmt::print("{:>6}  {:>8}  {:>11}  {:>7}  {:>12}  {:>10}\n", w, c.pid.load(),
               c.connections.load(), c.devices.load(), c.frames_in.load(), c.pushes_out.load());
  }
  fmt::print("\n{} devices connected, master pid {}\n", devices.size(), table->master_pid());
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
