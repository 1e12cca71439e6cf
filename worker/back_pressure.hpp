// The inbound sink's back-pressure as the operator sees it. While the sink has no room the
// worker stops reading devices (their frames wait in the sockets, none is lost): one log
// line when that starts and why, one a minute while it lasts, one when it ends (how long,
// how many connections waited at most), and the seconds and the paused connections in the
// metrics. An episode ends after a second with nothing paused, so that a backend that reads
// just slower than devices send gives one episode, not a pair of lines per loop pass.
#pragma once

#include <chrono>
#include <cstddef>

#include "shm/worker_counters.hpp"
#include "worker/deadlines.hpp"
#include "worker/inbound.hpp"

namespace iotsocket::worker {

class BackPressure {
 public:
  explicit BackPressure(shm::WorkerCounters& counters) noexcept : counters_(counters) {}

  // Once per loop pass, after paused connections were offered the room there is:
  // `paused` connections are not being read now.
  void update(SteadyTime now, std::size_t paused, const Inbound& sink) noexcept;

  bool on() const noexcept { return on_; }

 private:
  void start(SteadyTime now, const Inbound& sink) noexcept;
  void end() noexcept;
  void count_time(SteadyTime until) noexcept;

  shm::WorkerCounters& counters_;
  bool on_ = false;
  SteadyTime since_{};
  SteadyTime last_paused_{};
  SteadyTime counted_until_{};
  SteadyTime next_report_{};
  std::size_t most_paused_ = 0;
};

}  // namespace iotsocket::worker
