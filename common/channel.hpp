// The master <-> worker channel: one SOCK_SEQPACKET socketpair per worker, so every message
// arrives whole. A message is one fixed, trivially copyable struct; an accepted socket rides
// (SCM_RIGHTS) only with Cmd::new_connection.
//
//   master -> worker   new_connection (+fd)   take this accepted socket; peer = its address
//                      shutdown               drain: close the connections one by one over
//                                             shutdown.drain, then say drained
//                      stop_now               (a second SIGTERM) close the rest at once
//                      finish                 the last message it gets: send what is left
//                                             (pushes returned), flush inbound records, exit 0
//                      reload_tls (+payload)  TlsFiles: new handshakes use these
//                      reload_settings        read the config file again; apply what a reload
//                                             may change (config/README.md)
//                      reopen_log             open log.file again (SIGUSR1)
//                      fence                  echo it (after closing `device`'s connection
//                                             (slot, conn_generation) if it was replaced):
//                                             every push sent before it is handed back
//                      push (+payload)        write `payload` as a push frame to `device`
//                                             on connection (slot, conn_generation)
//   worker -> master   ready                  the loop runs; send connections from now on
//                      connection_closed      a socket of `peer` is closed (per-IP counts)
//                      device_online          `device` logged in on (slot, conn_generation):
//                                             send its queued pushes
//                      push_returned (+payload)  a push that was not written (the connection
//                                             was gone or closed first): route it again
//                      pushes_settled (+payload)  these pushes (their seq numbers, native
//                                             uint64s) are written whole (or dropped for
//                                             good): the master forgets its copies
//                      drained                every connection is closed: send no more
//                                             pushes, send finish
//                      fence                  the echo: the pushes sent before it are back
//                      reloaded (+payload)    a reload_tls or reload_settings is done: ""
//                                             or why this worker kept what it had
//
// Pushes carry their payload after the fixed part, in the same record (SEQPACKET keeps
// records whole), so a message is at most sizeof(Message) + kMaxPayload bytes.
// The master keeps a copy of every push it sends until the worker settles it
// (pushes_settled, or push_returned with its seq): those of a worker that dies go back to
// their devices' queues (master/in_flight.hpp). So a crash loses no push that was in the
// channel or in the worker's memory; one written just before it may come twice.
// Every message carries the worker's generation (bumped on each respawn); the master ignores
// messages of a generation it no longer runs. A worker exits when its channel reads EOF:
// the master is gone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "common/fd.hpp"
#include "common/io.hpp"
#include "common/net.hpp"

namespace iotsocket::channel {

enum class Cmd : std::uint8_t {
  ready = 1,
  new_connection,
  connection_closed,
  shutdown,
  push,
  device_online,
  push_returned,
  reload_tls,
  reload_settings,
  reopen_log,
  stop_now,
  drained,
  finish,
  fence,
  reloaded,
  pushes_settled,
};

// The largest payload a message carries: one push body (docs/PROTOCOL.md rule 10).
inline constexpr std::size_t kMaxPayload = 65536;

struct Message {
  Cmd cmd = Cmd::ready;
  std::uint32_t generation = 0;  // the worker's
  PeerAddress peer{};
  // push, device_online, push_returned: the device and the connection that holds it.
  std::uint64_t device = 0;
  std::uint32_t slot = 0;
  std::uint32_t conn_generation = 0;
  // push, push_returned: when the master read it from the FIFO (unix ns, strictly rising:
  // it orders a device's pushes when some come back)
  std::int64_t queued_at_ns = 0;
  // push_returned: more pushes of the same closed connection follow, in order; the master
  // puts the whole batch back at the front of the device's offline queue at once.
  bool more = false;
  // push, push_returned: the push's number in the master's sequence for this worker
  // (master/in_flight.hpp); pushes_settled carries such numbers as its payload.
  std::uint64_t seq = 0;
};

// Whether a command carries a payload after the fixed part.
constexpr bool carries_payload(Cmd cmd) noexcept {
  return cmd == Cmd::push || cmd == Cmd::push_returned || cmd == Cmd::reload_tls ||
         cmd == Cmd::reloaded || cmd == Cmd::pushes_settled;
}

static_assert(std::is_trivially_copyable_v<Message>);

// ---- payloads: each command's, encoded and decoded here only ----
// push, push_returned: the push's body as it is; reloaded: "" or the reason, as it is.

// pushes_settled: seq numbers travel as native uint64s, as many as one payload holds.
inline constexpr std::size_t kSeqsPerMessage = kMaxPayload / sizeof(std::uint64_t);
// At most kSeqsPerMessage numbers.
std::string encode_settled(std::span<const std::uint64_t> seqs);
// nullopt when the size is not a whole number of seqs.
std::optional<std::vector<std::uint64_t>> decode_settled(std::string_view payload);

// reload_tls: the certificate and key files the master has checked.
struct TlsFiles {
  std::string cert;
  std::string key;
};
std::string encode_tls_files(const TlsFiles& files);
// nullopt when the payload is not "CERT\nKEY".
std::optional<TlsFiles> decode_tls_files(std::string_view payload);

// Makes a non-blocking, close-on-exec SOCK_SEQPACKET pair: [0] for the master, [1] for the
// worker. Returns false (errno set) on failure.
bool make_pair(Fd& master_end, Fd& worker_end) noexcept;

// Sends `message`, with `pass_fd` attached when it is >= 0. The caller still owns pass_fd.
Io send(int channel, const Message& message, int pass_fd = -1) noexcept;
// Sends `message` followed by `payload` (at most kMaxPayload bytes) as one record.
Io send(int channel, const Message& message, std::string_view payload) noexcept;

struct Received {
  Io io = Io::error;
  Message message{};
  Fd fd;  // the passed socket, for Cmd::new_connection
  std::string payload;  // for the commands that carry_payload()
  // new_connection arrived but its socket did not: the receiver had no free descriptor
  // (EMFILE), so the kernel closed it. The message (and its peer) is still valid.
  bool fd_lost = false;
};
// Receives one message. A message of the wrong size, a foreign control part (not
// SCM_RIGHTS), or an fd on a command that carries none is Io::error; any descriptor that
// came with it is closed. A payload on a command that carries none is Io::error too. A
// new_connection whose fd was dropped (MSG_CTRUNC) is Io::ok with
// fd_lost set.
Received receive(int channel) noexcept;

}  // namespace iotsocket::channel
