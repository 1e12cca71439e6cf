// The clock skew of a device's frames: TIME minus the server's clock when the frame was
// accepted, in milliseconds (positive: the device's clock runs ahead). Answers "is this
// device's clock drifting towards protocol.time_tolerance?" for `iotsocketctl devices
// show`. The worker tracks it per connection (SkewTracker), the shared device table shows
// it live, the registry keeps the last session's at its end.
//
// Pure and header-only: no clock is read here, the caller passes both times.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstdlib>

#include "protocol/time.hpp"

namespace iotsocket {

struct ClockSkew {
  std::int32_t last_ms = 0;     // of the last frame accepted
  std::int32_t largest_ms = 0;  // the largest in magnitude of the recent frames (sign kept)
  friend bool operator==(const ClockSkew&, const ClockSkew&) = default;
};

// TIME − now in whole milliseconds, clamped to ±2^31−1 ms (the time checks refuse anything
// beyond a minute long before that).
constexpr std::int32_t skew_ms(protocol::Time frame_time, protocol::Time now) noexcept {
  constexpr std::int64_t kTicksPerMs = protocol::Tick::period::den / 1000;
  const std::int64_t ms = (frame_time - now).count() / kTicksPerMs;
  return static_cast<std::int32_t>(std::clamp<std::int64_t>(ms, -INT32_MAX, INT32_MAX));
}

// The skew of one connection's recent frames: the last, and the largest in magnitude over
// the last kWindow to 2 × kWindow frames (two windows, the current and the one before, so
// the figure follows a clock that drifts back instead of keeping a spike of a day ago).
// Constant size and time per frame.
class SkewTracker {
 public:
  static constexpr std::uint32_t kWindow = 64;

  void add(std::int32_t ms) noexcept {
    last_ = ms;
    any_ = true;
    if (larger(ms, current_max_) || in_window_ == 0) current_max_ = ms;
    if (++in_window_ == kWindow) {
      previous_max_ = current_max_;
      has_previous_ = true;
      in_window_ = 0;
    }
  }

  bool any() const noexcept { return any_; }

  // Meaningful once any() is true.
  ClockSkew value() const noexcept {
    std::int32_t largest = in_window_ > 0 ? current_max_ : previous_max_;
    if (has_previous_ && larger(previous_max_, largest)) largest = previous_max_;
    return ClockSkew{.last_ms = last_, .largest_ms = largest};
  }

 private:
  static bool larger(std::int32_t a, std::int32_t b) noexcept { return std::abs(a) > std::abs(b); }

  std::int32_t last_ = 0;
  std::int32_t current_max_ = 0;   // of the frames of the current window
  std::int32_t previous_max_ = 0;  // of the window before
  std::uint32_t in_window_ = 0;    // frames in the current window
  bool has_previous_ = false;
  bool any_ = false;
};

}  // namespace iotsocket
