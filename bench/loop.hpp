// One event loop: a Fleet and, in the first loop only, the inbound FIFO counter. With
// --threads T there are T loops, one per thread, sharing only Progress.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "bench/epoll.hpp"
#include "bench/fleet.hpp"
#include "bench/inbound_counter.hpp"

namespace iotsocket::bench {

// Push mode: what the loops and the push writer tell each other.
struct PushProgress {
  bool enabled = false;
  std::mutex mutex;                         // guards targets and published
  std::vector<protocol::DeviceId> targets;  // the loops' logged-in devices
  unsigned published = 0;                   // loops that added theirs to targets
  std::atomic<std::uint64_t> inbound_records{0};  // --count-inbound's count (loop 0)
  std::atomic<std::uint64_t> written{0};    // by the writer, as it writes
  std::atomic<bool> writer_done{false};     // written is final
  std::atomic<std::uint64_t> arrivals{0};   // first arrivals over all loops
};

// What the loops tell each other.
struct Progress {
  unsigned loops = 1;
  std::uint64_t devices = 0;
  double hold_s = 0;                          // 0: no hold
  std::atomic<std::uint64_t> frames_sent{0};  // over all loops, updated as they send
  std::atomic<std::uint64_t> up{0};           // up at the moment each loop settled
  std::atomic<unsigned> settled{0};           // loops whose devices are all up or failed
  std::atomic<unsigned> sending_done{0};      // loops that will send no more frames
  std::atomic<unsigned> ended{0};             // loops that returned
  PushProgress push;
};

// Set by SIGINT/SIGTERM (the handler only records); every loop checks it.
extern std::atomic<bool> g_stop;

struct LoopResult {
  FleetStats fleet;
  InboundStats inbound;
  std::string ended;  // "done", "deadline" or "signal"
};

// Runs until the fleet is finished (and, with a counter, every record sent has arrived),
// the deadline passes, or g_stop is set. `counter` may be null.
LoopResult run_loop(const FleetSetup& setup, InboundCounter* counter, Progress& progress,
                    Clock::time_point deadline);

}  // namespace iotsocket::bench
