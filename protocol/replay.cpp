#include "protocol/replay.hpp"

#include <algorithm>
#include <cstdint>

namespace iotsocket::protocol {

ReplayWindow ReplayWindow::starting_at(Time floor) noexcept {
  ReplayWindow window;
  window.floor = floor;
  window.recent.fill(floor);  // a slot at or below the floor is free
  return window;
}

bool ReplayWindow::is_fresh(Time t) const noexcept {
  return t > floor && std::find(recent.begin(), recent.end(), t) == recent.end();
}

void ReplayWindow::accept(Time t) noexcept {
  auto oldest = std::min_element(recent.begin(), recent.end());
  if (t < *oldest) {
    // `t` would be the one evicted at once: raising the floor to it records it.
    floor = std::max(floor, t);
    return;
  }
  floor = std::max(floor, *oldest);
  *oldest = t;
}

bool FloodGate::admit(Time now) noexcept {
  advance(now);
  // Frames in the last `window` with this one, estimated: all of the current window plus
  // the part of the previous one that still overlaps it. Multiplied through by window_ to
  // stay in integers. A refused frame is not counted.
  const std::int64_t elapsed = std::clamp((now - window_start_).count(), std::int64_t{0},
                                          window_.count());
  const std::int64_t weighted = std::int64_t{previous_} * (window_.count() - elapsed) +
                                (std::int64_t{current_} + 1) * window_.count();
  if (weighted > std::int64_t{limit_} * window_.count()) return false;
  ++current_;  // at most limit_: cannot overflow
  return true;
}

void FloodGate::advance(Time now) noexcept {
  if (now < window_start_ + window_) return;
  if (now < window_start_ + 2 * window_) {
    previous_ = current_;
    window_start_ += window_;
  } else {
    previous_ = 0;
    window_start_ = now;
  }
  current_ = 0;
}

}  // namespace iotsocket::protocol
