// Replay and flood protection (docs/PROTOCOL.md "What the server enforces").
#pragma once

#include <array>
#include <cstdint>
#include <type_traits>

#include "protocol/time.hpp"

namespace iotsocket::protocol {

// The TIME values already accepted for one device, in fixed memory whatever the device
// sends. A TIME is fresh when it is above `floor` and not among `recent`; accepting it
// stores it in `recent`, evicting the smallest, whose value becomes the new floor. So
// every accepted TIME is either in `recent` or at most `floor`, and none is accepted twice.
//
// With no slots this is the high-water mark docs/PROTOCOL.md describes; the slots let a device
// whose frames arrive slightly out of order (two sender threads, say) keep its link.
//
// The starting floor must be at least every TIME an earlier run of the server may have
// accepted for the device, or a frame recorded then can be replayed now. The server's
// start time is NOT enough (docs/PROTOCOL.md's "max(mark, server start time)" has this gap): a
// TIME may run up to the tolerance ahead of the clock, so a frame accepted just before a
// restart stays within tolerance for up to that long after it. Use the device's mark from
// the earlier run where it was kept, and start time + tolerance where it was not.
//
// Trivially copyable and fixed-size so that it can live in the shared device table.
// accept() writes the floor before it overwrites the evicted slot, so a process killed
// between the two stores leaves a state that still refuses every accepted TIME.
struct ReplayWindow {
  static constexpr std::size_t kSlots = 8;

  Time floor{};
  std::array<Time, kSlots> recent{};

  static ReplayWindow starting_at(Time floor) noexcept;

  bool is_fresh(Time t) const noexcept;
  // Records `t` as accepted. Call only after is_fresh(t) and after the frame's KEY checked out.
  void accept(Time t) noexcept;
};
static_assert(std::is_trivially_copyable_v<ReplayWindow>);

// Refuses the frame that makes more than `limit` frames within `window` (the legacy
// server closed at 333 frames within 3 s). A sliding-window estimate over two fixed
// windows, 24 bytes per connection: exact for steady rates; a burst timed across the
// boundary of two windows can pass up to twice `limit` within one window, never more.
// It is a guard against floods, not an accounting (an exact count would need a log of
// `limit` timestamps per connection).
class FloodGate {
 public:
  FloodGate(std::uint32_t limit, Tick window) noexcept : limit_(limit), window_(window) {}

  // Counts one frame at `now`; false (and not counted) when it would go over the limit.
  bool admit(Time now) noexcept;

 private:
  void advance(Time now) noexcept;

  std::uint32_t limit_;
  std::uint32_t previous_ = 0;  // frames in the window before the current one
  std::uint32_t current_ = 0;   // frames in the current window
  Tick window_;
  Time window_start_{};
};

}  // namespace iotsocket::protocol
