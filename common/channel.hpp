// The master <-> worker channel: one SOCK_SEQPACKET socketpair per worker, so every message
// arrives whole. A message is one fixed, trivially copyable struct; an accepted socket rides
// (SCM_RIGHTS) only with Cmd::new_connection.
//
//   master -> worker   new_connection (+fd)   take this accepted socket; peer = its address
//                      shutdown               stop, flush inbound records, close, exit 0
//   worker -> master   ready                  the loop runs; send connections from now on
//                      connection_closed      a socket of `peer` is closed (per-IP counts)
//
// Every message carries the worker's generation (bumped on each respawn); the master ignores
// messages of a generation it no longer runs. A worker exits when its channel reads EOF:
// the master is gone.
#pragma once

#include <cstdint>
#include <type_traits>

#include "common/fd.hpp"
#include "common/net.hpp"

namespace iotsocket::channel {

enum class Cmd : std::uint8_t { ready = 1, new_connection, connection_closed, shutdown };

struct Message {
  Cmd cmd = Cmd::ready;
  std::uint32_t generation = 0;
  PeerAddress peer{};
};
static_assert(std::is_trivially_copyable_v<Message>);

// Would-block is a value, not an error.
enum class Io { ok, would_block, closed, error };

// Makes a non-blocking, close-on-exec SOCK_SEQPACKET pair: [0] for the master, [1] for the
// worker. Returns false (errno set) on failure.
bool make_pair(Fd& master_end, Fd& worker_end) noexcept;

// Sends `message`, with `pass_fd` attached when it is >= 0. The caller still owns pass_fd.
Io send(int channel, const Message& message, int pass_fd = -1) noexcept;

struct Received {
  Io io = Io::error;
  Message message{};
  Fd fd;  // the passed socket, for Cmd::new_connection
  // new_connection arrived but its socket did not: the receiver had no free descriptor
  // (EMFILE), so the kernel closed it. The message (and its peer) is still valid.
  bool fd_lost = false;
};
// Receives one message. A message of the wrong size, a foreign control part (not
// SCM_RIGHTS), or an fd on a command that carries none is Io::error; any descriptor that
// came with it is closed. A new_connection whose fd was dropped (MSG_CTRUNC) is Io::ok with
// fd_lost set.
Received receive(int channel) noexcept;

}  // namespace iotsocket::channel
