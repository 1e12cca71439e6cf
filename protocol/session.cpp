#include "protocol/session.hpp"

#include <string_view>

namespace iotsocket::protocol {
namespace {

// Takes as long for every key of one length, so the comparison leaks only the length.
bool same_key(std::string_view a, std::string_view b) noexcept {
  if (a.size() != b.size()) return false;
  unsigned char difference = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    difference = static_cast<unsigned char>(difference | (a[i] ^ b[i]));
  }
  return difference == 0;
}

}  // namespace

std::optional<FrameError> Session::admit(const FrameView& frame, Arrival arrival,
                                         ReplayWindow& replay) noexcept {
  if (const auto error = continuity_error(frame)) return error;
  if (!within_tolerance(frame.time, arrival, tolerance_)) return FrameError::time_skew;
  if (!replay.is_fresh(frame.time)) return FrameError::replayed_time;
  // A backlog read at once is counted at the instants it came, not as a burst of our own.
  if (!flood_.admit(arrival.nearest(frame.time))) return FrameError::flood;

  replay.accept(frame.time);
  if (!device_) {
    device_ = frame.device;
    key_.assign(frame.key);
  }
  return std::nullopt;
}

std::optional<FrameError> Session::continuity_error(const FrameView& frame) const noexcept {
  if (!device_) return std::nullopt;
  if (frame.device != *device_) return FrameError::device_mismatch;
  if (!same_key(frame.key, key_)) return FrameError::key_mismatch;
  return std::nullopt;
}

}  // namespace iotsocket::protocol
