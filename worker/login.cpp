#include "worker/login.hpp"

#include <algorithm>
#include <optional>
#include <string>

#include <spdlog/spdlog.h>

#include "protocol/errors.hpp"
#include "protocol/replay.hpp"

namespace iotsocket::worker {

std::string_view Login::log_in(Connection& c, const protocol::FrameView& frame, protocol::Arrival arrival) noexcept {
  c.claimed_device = frame.device;  // for the log lines, until the login succeeds
  const LoginCheck check = registry_.verify(frame.device, frame.key);
  if (check != LoginCheck::ok) return name(check);

  // The registry keeps the mark across server restarts, the directory across reconnects.
  const protocol::Time kept =
      std::max(replay_floor_, registry_.replay_mark(frame.device).value_or(protocol::Time{}));
  shm::ClaimResult result;
  if (auto refused = claim(c, frame, arrival, kept, result); !refused.empty()) return refused;
  c.replay = protocol::ReplayWindow::starting_at(std::max(result.replay_mark, kept));
  c.push_times = protocol::TimeStamper(result.push_mark);
  c.lease = result.lease;
  if (auto error = c.session.admit(frame, arrival, c.replay)) {
    c.lease.release();
    return protocol::name(*error);
  }
  c.lease.raise_replay_mark(frame.time);
  c.state = ConnState::live;
  c.login_unix = unix_seconds_now();
  return {};
}

// Clone protection (docs/PROTOCOL.md): one connection per device across all workers,
// decided by one compare-and-swap in the device directory.
std::string_view Login::claim(Connection& c, const protocol::FrameView& frame, protocol::Arrival arrival,
                              protocol::Time kept_mark, shm::ClaimResult& result) noexcept {
  result = directory_.claim(frame.device, holder_of(c), c.peer, unix_seconds_now());
  if (result.status == shm::ClaimStatus::held) {
    if (auto refused = replace(c, frame, arrival, kept_mark, result); !refused.empty()) return refused;
  }
  if (result.status == shm::ClaimStatus::table_full) {
    spdlog::error("device table full ({} devices, limits.max_devices); device={} refused",
                  directory_.capacity(), protocol::to_string(frame.device));
    return "device_table_full";
  }
  return {};
}

// The device is held by another connection: devices.duplicate decides which one stays. ""
// when this one does (or the take-over found the table full: the caller says so).
std::string_view Login::replace(Connection& c, const protocol::FrameView& frame, protocol::Arrival arrival,
                                protocol::Time kept_mark, shm::ClaimResult& result) noexcept {
  const auto other = directory_.find(frame.device);
  const std::string other_peer = other ? other->peer.to_string() : std::string("-");
  if (devices_.duplicate == config::DuplicatePolicy::replace) {
    // A stale or replayed frame must not displace the device's live connection: the time
    // checks come before the takeover (the session repeats them after it).
    if (!protocol::within_tolerance(frame.time, arrival, limits_.time_tolerance)) {
      return protocol::name(protocol::FrameError::time_skew);
    }
    if (frame.time <= std::max(result.replay_mark, kept_mark)) {
      return protocol::name(protocol::FrameError::replayed_time);
    }
    result = directory_.take_over(frame.device, result.previous, holder_of(c), c.peer, unix_seconds_now());
    if (result.status == shm::ClaimStatus::claimed) {
      spdlog::warn("duplicate login device={} peer={}: replaces the connection from peer={} "
                   "(devices.duplicate: replace)",
                   protocol::to_string(frame.device), c.peer.to_string(), other_peer);
      return {};
    }
  }
  if (result.status == shm::ClaimStatus::held) {
    spdlog::warn("duplicate login device={} peer={}: already connected from peer={}; refused",
                 protocol::to_string(frame.device), c.peer.to_string(), other_peer);
    return "duplicate_login";
  }
  return {};
}

}  // namespace iotsocket::worker
