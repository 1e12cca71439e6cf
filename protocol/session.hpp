// The per-connection rules of docs/PROTOCOL.md that need no device registry: the first frame
// names the device; every later one must name the same DEVICE and KEY; every frame must
// be within the time tolerance, fresh for this device, and within the flood limit.
//
// The worker checks DEVICE and KEY against the registry on the first frame before it
// calls admit(), so that the replay window is only ever raised for a verified KEY.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "protocol/errors.hpp"
#include "protocol/frame.hpp"
#include "protocol/replay.hpp"
#include "protocol/time.hpp"

namespace iotsocket::protocol {

struct SessionLimits {
  Tick time_tolerance = std::chrono::seconds{3};
  std::uint32_t flood_frames = 333;
  Tick flood_window = std::chrono::seconds{3};
};

class Session {
 public:
  explicit Session(const SessionLimits& limits) noexcept
      : tolerance_(limits.time_tolerance), flood_(limits.flood_frames, limits.flood_window) {}

  // Checks `frame`, which reached the server within `arrival`, against the rules above: the
  // time check and the flood limit take the instant of `arrival` nearest to its TIME, so a
  // frame that waited in the socket while the server did not read is judged by when it
  // came. On success the frame's TIME is recorded in `replay` (the device's window, which
  // outlives this connection) and the first frame binds this session to its DEVICE and KEY.
  // noexcept although the first frame's KEY is copied: a worker that cannot allocate a few
  // bytes is better ended (and replaced by the master) than left half-working.
  std::optional<FrameError> admit(const FrameView& frame, Arrival arrival, ReplayWindow& replay) noexcept;
  std::optional<FrameError> admit(const FrameView& frame, Time now, ReplayWindow& replay) noexcept {
    return admit(frame, Arrival::at(now), replay);
  }

  bool logged_in() const noexcept { return device_.has_value(); }
  std::optional<DeviceId> device() const noexcept { return device_; }

 private:
  std::optional<FrameError> continuity_error(const FrameView& frame) const noexcept;

  Tick tolerance_;
  FloodGate flood_;
  std::optional<DeviceId> device_;
  // The first frame's KEY, compared byte for byte with every later one. (A digest would
  // save a few bytes, but a non-cryptographic one can be collided on purpose.)
  std::string key_;
};

}  // namespace iotsocket::protocol
