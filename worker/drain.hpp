// Drain: the closing order of a shutdown. The connections are closed in a random order,
// evenly spread over the drain period, so that devices of every worker come back to a
// restarted server a few at a time. Until its turn a connection works as always (frames
// in, pushes out). stop_now shortens the period to zero: every one left is due at once.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "worker/deadlines.hpp"

namespace iotsocket::worker {

class Drain {
 public:
  // The first call fixes the order (`tags`: the connections open now, shuffled with
  // `seed`); a later one only changes the period.
  void begin(std::chrono::milliseconds period, SteadyTime now, std::vector<std::uint64_t> tags,
             std::uint32_t seed);
  bool draining() const noexcept { return draining_; }
  // When the next connection is due to close; nullopt when none is (or not draining).
  std::optional<SteadyTime> next_close() const noexcept;
  // The tag of the next connection due by `now` (it may have closed meanwhile); nullopt
  // when none is due yet.
  std::optional<std::uint64_t> next_due(SteadyTime now) noexcept;
  // True once: when draining and no connection is left (the worker says `drained`).
  bool just_drained(std::size_t open_connections) noexcept;

 private:
  bool draining_ = false;
  bool said_drained_ = false;
  SteadyTime started_{};
  std::chrono::milliseconds period_{};
  std::vector<std::uint64_t> order_;  // tags of the connections, in closing order
  std::size_t next_ = 0;
};

}  // namespace iotsocket::worker
