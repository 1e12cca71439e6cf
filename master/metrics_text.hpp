// The metrics endpoint's numbers (a Snapshot, gathered by metrics_snapshot.cpp) and their
// rendering as the Prometheus text exposition format 0.0.4. Rendering is pure: a snapshot
// in, text out; nothing here reads a socket, a clock or shared memory.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "shm/worker_totals.hpp"

namespace iotsocket::master::metrics {

// Summed over the workers' shared-memory counters (shm/worker_totals.hpp).
using WorkerTotals = shm::WorkerTotals;

// What the master counts itself.
struct MasterTotals {
  std::uint64_t pushes_routed = 0;   // handed to the worker holding the device
  std::uint64_t pushes_queued = 0;   // stored for an offline device
  std::uint64_t pushes_refused = 0;  // unknown device, or no offline queue
  std::uint64_t pushes_expired = 0;  // push.offline_max_age passed in the queue
  std::uint64_t pushes_evicted = 0;  // push.offline_max reached
  std::uint64_t offline_queued = 0;  // now waiting in the offline queue
  std::uint64_t refused_max_connections = 0;  // at accept, over limits.max_connections
  std::uint64_t refused_per_ip = 0;           // at accept, over limits.per_ip
  std::uint64_t worker_restarts = 0;          // workers that died and were replaced
  std::uint32_t workers = 0;
  std::uint32_t workers_ready = 0;
  std::optional<std::int64_t> certificate_not_after;  // unix seconds; none without TLS
};

struct Snapshot {
  WorkerTotals workers;
  MasterTotals master;
};

// The text format 0.0.4: `# HELP`, `# TYPE`, then the samples of each family, names
// prefixed iotsocket_, counters suffixed _total.
std::string render(const Snapshot& snapshot);

// A label value as the format quotes it: backslash, double quote and newline escaped.
std::string escape_label_value(std::string_view value);

}  // namespace iotsocket::master::metrics
