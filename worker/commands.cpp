// What the master says to a worker (common/channel.hpp), and what the worker checks on its
// own for the master's sake: connections that are no longer theirs to keep, and the closing
// order of a shutdown.
#include <unistd.h>

#include <random>

#include <spdlog/spdlog.h>

#include "common/log.hpp"
#include "worker/worker_loop.hpp"

namespace iotsocket::worker {
namespace {

// How often the worker looks at the device directory for connections it must close:
// devices revoked by iotsocketctl, and devices another connection took over (duplicate:
// replace).
constexpr auto kHolderCheckInterval = std::chrono::milliseconds(200);

}  // namespace

void Worker::on_channel() noexcept {
  for (;;) {
    channel::Received r = master_.receive();
    switch (r.io) {
      case Io::want_read:
      case Io::want_write:  // receive() never says it
        return;
      case Io::closed:
        spdlog::warn("master channel closed: the master is gone; stopping");
        stopping_ = true;
        return;
      case Io::error:
        spdlog::error("malformed message on the master channel; ignored");
        continue;
      case Io::ok:
        break;
    }
    if (r.fd_lost) {
      on_socket_lost(r.message.peer);
    } else {
      on_command(r);
    }
  }
}

void Worker::on_command(channel::Received& r) noexcept {
  switch (r.message.cmd) {
    case channel::Cmd::new_connection:
      fd_shortage_logged_ = false;
      adopt(std::move(r.fd), r.message.peer);
      break;
    case channel::Cmd::push:
      on_push(r);
      break;
    case channel::Cmd::reload_tls:
      master_.send(channel::Message{.cmd = channel::Cmd::reloaded}, reload_tls(r.payload));
      break;
    case channel::Cmd::reload_settings:
      master_.send(channel::Message{.cmd = channel::Cmd::reloaded}, reload_settings());
      break;
    case channel::Cmd::reopen_log:
      if (auto error = log::reopen()) spdlog::error("cannot reopen {}: {}", log::file(), *error);
      break;
    case channel::Cmd::shutdown:
      begin_drain(config_.shutdown.drain);
      break;
    case channel::Cmd::stop_now:
      begin_drain(std::chrono::milliseconds(0));
      break;
    case channel::Cmd::finish:
      stopping_ = true;
      break;
    case channel::Cmd::fence:
      pass_fence(r.message);
      break;
    default:
      break;  // the worker's own commands: never sent to it
  }
}

// No descriptor was free here; the kernel closed the socket. Tell the master, whose counts
// include it, and say so once per shortage.
void Worker::on_socket_lost(const PeerAddress& peer) noexcept {
  if (!fd_shortage_logged_) {
    spdlog::warn("out of file descriptors (EMFILE): connections handed over are being "
                 "dropped, first peer={}", peer.to_string());
    fd_shortage_logged_ = true;
  }
  master_.say(channel::Cmd::connection_closed, peer);
}

void Worker::on_push(channel::Received& r) noexcept {
  const channel::Message& m = r.message;
  Connection* c = connections_.find(ConnectionTable::tag(m.slot, m.conn_generation));
  if (c == nullptr || c->state != ConnState::live || !c->session.device() ||
      c->session.device()->value != m.device) {
    pushes_.bounce(m, std::move(r.payload));  // the connection closed while it was on its way
    return;
  }
  if (auto why = pushes_.queue(*c, std::move(r.payload), m); !why.empty()) close(*c, why);
}

// The device logged in on another connection while pushes were on their way here. Those
// have been handed back by now (on_push, in channel order); a connection that was replaced
// but has not noticed yet is closed first, so that its unwritten pushes come back too.
void Worker::pass_fence(const channel::Message& m) noexcept {
  Connection* c = connections_.find(ConnectionTable::tag(m.slot, m.conn_generation));
  if (c != nullptr && c->state == ConnState::live && c->session.device() &&
      c->session.device()->value == m.device && !c->lease.holds()) {
    close(*c, "replaced");
  }
  master_.send(channel::Message{.cmd = channel::Cmd::fence, .device = m.device});
}

// Closes connections that are no longer theirs to keep: the device was taken over by
// another login, or iotsocketctl revoked it (disable, remove).
void Worker::check_holds(SteadyTime now) noexcept {
  if (now < next_holder_check_) return;
  next_holder_check_ = now + kHolderCheckInterval;
  const std::uint64_t epoch = directory_.close_epoch();
  const bool requests = epoch != seen_close_epoch_;
  seen_close_epoch_ = epoch;
  connections_.for_each([&](Connection& c) {
    if (c.state != ConnState::live || !c.session.device()) return;
    if (!c.lease.holds()) {
      close(c, "replaced");
    } else if (requests && directory_.take_close_request(*c.session.device())) {
      close(c, "revoked");
    }
  });
}

// ---- shutdown: connections close one by one, spread over the drain period -------------

void Worker::begin_drain(std::chrono::milliseconds period) noexcept {
  const SteadyTime now = std::chrono::steady_clock::now();
  if (!drain_.draining()) {
    const std::uint32_t seed = static_cast<std::uint32_t>(::getpid()) ^
                               static_cast<std::uint32_t>(now.time_since_epoch().count());
    drain_.begin(period, now, connections_.tags(), seed);
    spdlog::info("stopping: closing {} connections over {} ms", connections_.size(), period.count());
  } else {
    drain_.begin(period, now, {}, 0);  // 0 (stop_now): every one left is due at once
    spdlog::info("stopping now: closing the {} connections left", connections_.size());
  }
  drain_step(now);
}

void Worker::drain_step(SteadyTime now) noexcept {
  while (auto tag = drain_.next_due(now)) {
    if (Connection* c = connections_.find(*tag)) close_for_shutdown(*c);
  }
  // The master answers with `finish`, behind any push still on its way here.
  if (drain_.just_drained(connections_.size())) master_.say(channel::Cmd::drained);
}

// At its turn, what a connection can still write is written, and the rest of its pushes go
// back to the offline queue.
void Worker::close_for_shutdown(Connection& c) noexcept {
  if (c.out && !write_pushes(c)) return;  // closed while writing
  close(c, "server_shutdown");
}

}  // namespace iotsocket::worker
