#include "shm/worker_totals.hpp"

#include <algorithm>

#include "shm/device_table.hpp"

namespace iotsocket::shm {

WorkerTotals sum_workers(const DeviceTable& table) {
  using C = WorkerCounters;
  WorkerTotals t;
  std::uint64_t connections = 0;
  for (std::uint32_t w = 0; w < table.workers(); ++w) {
    const C& c = table.counters(w);
    connections += C::get(c.connections);
    t.handshaking += C::get(c.handshaking);
    t.live += C::get(c.devices);
    t.logins += C::get(c.logins);
    t.frames_in += C::get(c.frames_in);
    t.frames_out += C::get(c.pushes_out);
    t.bytes_in += C::get(c.bytes_in);
    t.bytes_out += C::get(c.bytes_out);
    t.spool_bytes = std::max(t.spool_bytes, C::get(c.spool_bytes));
    t.memory_bytes += C::get(c.memory_bytes);
    t.paused += C::get(c.paused);
    t.backpressure_ms += C::get(c.backpressure_ms);
    for (std::size_t r = 0; r < kCloseReasonCount; ++r) t.closes[r] += C::get(c.closes[r]);
  }
  // The three are read one after another while workers change them: never below zero.
  const std::uint64_t known = t.handshaking + t.live;
  t.awaiting_login = connections > known ? connections - known : 0;
  return t;
}

}  // namespace iotsocket::shm
