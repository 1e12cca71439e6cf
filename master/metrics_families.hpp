// The metrics endpoint's numbers (a Snapshot, gathered by the master: metrics_snapshot.cpp
// and shm::sum_workers) and their metric families, kept with prometheus-cpp (Debian's
// prometheus-cpp-dev, its core library only): a Registry holds every family and series;
// each scrape sets them from a snapshot and the library's TextSerializer writes the text
// format 0.0.4. Nothing here reads a socket, a clock or shared memory.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

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
  std::uint64_t refused_workers_behind = 0;   // shed at accept: every worker behind on handshakes
  std::uint64_t worker_restarts = 0;          // workers that died and were replaced
  std::uint32_t workers = 0;
  std::uint32_t workers_ready = 0;
  std::optional<std::int64_t> certificate_not_after;  // unix seconds; none without TLS
};

struct Snapshot {
  WorkerTotals workers;
  MasterTotals master;
};

// Every family the endpoint serves: names prefixed iotsocket_, counters suffixed _total,
// every label value present from the start (a series exists before its first event). A
// counter only ever moves up: a snapshot below what it already showed leaves it where it
// is. The certificate's gauge is served only while there is a certificate. Move-only;
// not for use from two threads at once (the master's loop is its only user).
class Families {
 public:
  Families();
  Families(Families&&) noexcept;
  Families& operator=(Families&&) noexcept;
  ~Families();

  // Sets every series from the snapshot, then writes the text format 0.0.4: `# HELP`,
  // `# TYPE`, then the samples of each family.
  std::string render(const Snapshot& snapshot);

 private:
  struct Series;
  std::unique_ptr<Series> series_;
};

}  // namespace iotsocket::master::metrics
