// One device connection as a worker holds it: the socket, its TLS state, the IOT/1.1 byte
// stream and session, and the times that decide when it is closed. Owned by the worker's
// connection table; everything a connection owns is released with it.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock_skew.hpp"
#include "common/fd.hpp"
#include "common/io.hpp"
#include "common/net.hpp"
#include "common/tls.hpp"
#include "protocol/device_id.hpp"
#include "protocol/decoder.hpp"
#include "protocol/replay.hpp"
#include "protocol/session.hpp"
#include "protocol/time.hpp"
#include "shm/lease.hpp"
#include "worker/arrival_clock.hpp"
#include "worker/deadlines.hpp"

namespace iotsocket::worker {

// Push frames framed for the device and not yet written. Allocated only while there is
// something to write: most connections never have a push in flight, and an empty queue
// costs one pointer.
struct WriteQueue {
  struct Entry {
    std::size_t end = 0;  // offset in `bytes` just past this push's frame
    std::string payload;  // kept to hand it back when the connection closes first
    std::int64_t queued_at_ns = 0;
    std::uint64_t seq = 0;  // the master's number for it (channel::Message::seq)
  };
  std::string bytes;
  std::size_t written = 0;    // bytes[0, written) are on the wire
  std::size_t retry_len = 0;  // length of a write that must be repeated (TLS), else 0
  std::vector<Entry> entries;  // in order; entries[i] is written when end <= written
  std::size_t unsent() const noexcept { return bytes.size() - written; }
};

enum class ConnState : std::uint8_t {
  handshake,       // TLS handshake in progress
  awaiting_login,  // TLS up, no frame yet
  live,            // logged in
};

// No DEVICE seen yet (Connection::claimed_device).
inline constexpr std::uint64_t kNoDevice = ~std::uint64_t{0};

struct Connection {
  Connection(Fd socket, const PeerAddress& address, const protocol::SessionLimits& limits)
      : fd(std::move(socket)),
        peer(address),
        decoder(protocol::Direction::from_device),
        session(limits) {}

  Fd fd;
  Ssl ssl;  // null on a plain-TCP listener (tls.enabled: false)
  PeerAddress peer;
  protocol::Decoder decoder;
  protocol::Session session;
  protocol::ReplayWindow replay{};  // the device's window while it is logged in here
  protocol::DeviceId claimed_device{kNoDevice};  // DEVICE of the first frame, for logs
  shm::Lease lease;                     // the device's entry in the directory, while logged in
  protocol::TimeStamper push_times;     // TIMEs of the push frames written to this device
  std::unique_ptr<WriteQueue> out;      // null while nothing waits to be written
  SkewTracker skew;                     // TIME - clock of the frames accepted (devices show)
  ArrivalMark arrival;                  // since when what is unread may have waited
  std::int64_t login_unix = 0;          // when the login succeeded, seconds since the epoch

  ConnState state = ConnState::handshake;
  std::uint32_t slot = 0;        // index in the worker's connection table
  std::uint32_t generation = 0;  // tells a reused slot from its earlier occupant
  std::uint32_t epoll_events = 0;  // the interest currently registered
  bool paused = false;             // not reading: the inbound sink has no room

  SteadyTime accepted_at{};
  SteadyTime phase_started_at{};  // handshake done (awaiting_login)
  SteadyTime last_frame_at{};
  SteadyTime queued_at{};  // time of this connection's live DeadlineQueue entry
};

// The device for log lines: the session's, else the DEVICE its first frame named, else "-".
inline std::string device_text(const Connection& c) {
  auto id = c.session.device();
  if (!id && c.claimed_device.value != kNoDevice) id = c.claimed_device;
  return id ? protocol::to_string(*id) : std::string("-");
}

inline protocol::Time wall_now() { return protocol::to_time(std::chrono::system_clock::now()); }

inline std::int64_t unix_seconds_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

}  // namespace iotsocket::worker
