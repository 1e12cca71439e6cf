#include "protocol/session.hpp"

#include <functional>
#include <string_view>

namespace iotsocket::protocol {
namespace {

std::size_t digest(std::string_view key) noexcept { return std::hash<std::string_view>{}(key); }

}  // namespace

std::optional<FrameError> Session::admit(const FrameView& frame, Time now,
                                         ReplayWindow& replay) noexcept {
  if (const auto error = continuity_error(frame)) return error;
  if (!within_tolerance(frame.time, now, tolerance_)) return FrameError::time_skew;
  if (!replay.is_fresh(frame.time)) return FrameError::replayed_time;
  if (!flood_.admit(now)) return FrameError::flood;

  replay.accept(frame.time);
  if (!device_) {
    device_ = frame.device;
    key_digest_ = digest(frame.key);
  }
  return std::nullopt;
}

std::optional<FrameError> Session::continuity_error(const FrameView& frame) const noexcept {
  if (!device_) return std::nullopt;
  if (frame.device != *device_) return FrameError::device_mismatch;
  if (digest(frame.key) != key_digest_) return FrameError::key_mismatch;
  return std::nullopt;
}

}  // namespace iotsocket::protocol
