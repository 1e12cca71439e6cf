// One event loop: a Fleet and, in the first loop only, the inbound FIFO counter. With
// --threads T there are T loops, one per thread, sharing only Progress.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

#include "bench/epoll.hpp"
#include "bench/fleet.hpp"
#include "bench/inbound_counter.hpp"

namespace iotsocket::bench {

// What the loops tell each other.
struct Progress {
  unsigned loops = 1;
  std::uint64_t devices = 0;
  double hold_s = 0;                          // 0: no hold
  std::atomic<std::uint64_t> frames_sent{0};  // over all loops, updated as they send
  std::atomic<std::uint64_t> up{0};           // up at the moment each loop settled
  std::atomic<unsigned> settled{0};           // loops whose devices are all up or failed
  std::atomic<unsigned> sending_done{0};      // loops that will send no more frames
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
