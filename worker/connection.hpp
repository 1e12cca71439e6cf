// One device connection as a worker holds it: the socket, its TLS state, the IOT/1.1 byte
// stream and session, and the times that decide when it is closed. Owned by the worker's
// connection table; everything a connection owns is released with it.
#pragma once

#include <chrono>
#include <cstdint>
#include <string_view>

#include "common/fd.hpp"
#include "common/net.hpp"
#include "common/tls.hpp"
#include "protocol/decoder.hpp"
#include "protocol/replay.hpp"
#include "protocol/session.hpp"
#include "worker/deadlines.hpp"

namespace iotsocket::worker {

enum class ConnState : std::uint8_t {
  handshake,       // TLS handshake in progress
  awaiting_login,  // TLS up, no frame yet
  live,            // logged in
};

// The result of one step of TLS I/O. Would-block is a value, not an error.
enum class Io : std::uint8_t { ok, want_read, want_write, closed, error };

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
  protocol::DeviceId claimed_device{~std::uint64_t{0}};  // DEVICE of the first frame, for logs

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

}  // namespace iotsocket::worker
