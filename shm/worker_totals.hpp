// The workers' shared-memory counters summed over all workers: what the metrics endpoint
// serves and `iotsocketctl status` prints.
#pragma once

#include <array>
#include <cstdint>

#include "shm/worker_counters.hpp"

namespace iotsocket::shm {

class DeviceTable;

struct WorkerTotals {
  std::uint64_t handshaking = 0;     // connections by state, now
  std::uint64_t awaiting_login = 0;
  std::uint64_t live = 0;
  std::uint64_t logins = 0;
  std::uint64_t frames_in = 0;
  std::uint64_t frames_out = 0;  // push frames written to devices
  std::uint64_t bytes_in = 0;
  std::uint64_t bytes_out = 0;
  std::uint64_t spool_bytes = 0;   // the shared spool on disk
  std::uint64_t memory_bytes = 0;  // inbound records held in the workers' memory
  std::uint64_t paused = 0;        // connections not read for want of room, now
  std::uint64_t backpressure_ms = 0;  // summed over workers
  std::array<std::uint64_t, kCloseReasonCount> closes{};  // by kCloseReasons index
};

// Sums every worker's counters (the gauges of a worker that died are zero: the master
// cleared them). The spool is shared by the workers: the largest size any of them saw.
WorkerTotals sum_workers(const DeviceTable& table);

}  // namespace iotsocket::shm
