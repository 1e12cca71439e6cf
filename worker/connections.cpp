// A connection's life in the worker: adopted from the master, the TLS handshake, frames read
// and taken (the login first, then each frame into the inbound sink), pushes written when it
// is writable, paused while the sink has no room, and closed with one log line.
#include <sys/epoll.h>
#include <sys/ioctl.h>

#include <chrono>
#include <memory>

#include <spdlog/spdlog.h>

#include "protocol/errors.hpp"
#include "protocol/limits.hpp"
#include "worker/session_facts.hpp"
#include "worker/tls_io.hpp"
#include "worker/worker_loop.hpp"

namespace iotsocket::worker {
namespace {

constexpr std::size_t kReadChunk = 16 * 1024;  // one TLS record
// A frame read within this of the last time its connection had nothing unread was read as
// it came (an idle loop wakes at least every 200 ms for the holder check).
constexpr protocol::Tick kPromptRead = std::chrono::seconds(1);

using std::chrono::steady_clock;

// The highest TIME accepted for a device: what the registry keeps between sessions.
protocol::Time high_mark(const protocol::ReplayWindow& w) {
  protocol::Time mark = w.floor;
  for (protocol::Time t : w.recent) mark = std::max(mark, t);
  return mark;
}

}  // namespace

void Worker::adopt(Fd socket, const PeerAddress& peer) noexcept {
  if (drain_.draining()) {
    // Handed over just before the master stopped accepting.
    spdlog::info("closed device=- peer={} reason=server_shutdown", peer.to_string());
    counters_.count_close("server_shutdown");
    master_.say(channel::Cmd::connection_closed, peer);
    return;
  }
  auto made = std::make_unique<Connection>(std::move(socket), peer, limits_);
  made->accepted_at = steady_clock::now();
  made->arrival.start(wall_now());
  if (!start_tls(*made)) return;
  Connection& c = connections_.add(std::move(made));
  counters_.connections.fetch_add(1, std::memory_order_relaxed);
  spdlog::info("accepted peer={}", peer.to_string());
  if (!connections_.watch(c)) {
    spdlog::error("peer={} epoll_ctl(ADD) failed: {}", peer.to_string(), std::strerror(errno));
    close(c, "worker_error");
    return;
  }
  deadlines_.schedule(c);
  drive(c);  // a TLS ClientHello may already be waiting
}

// False (the master told) when no TLS state could be made for the connection.
bool Worker::start_tls(Connection& c) noexcept {
  if (tls_ == nullptr) {
    c.state = ConnState::awaiting_login;
    c.phase_started_at = c.accepted_at;
    return true;
  }
  c.ssl.reset(SSL_new(tls_));
  if (!c.ssl || SSL_set_fd(c.ssl.get(), c.fd.get()) != 1) {
    spdlog::error("peer={} SSL_new failed: {}", c.peer.to_string(), drain_tls_errors());
    master_.say(channel::Cmd::connection_closed, c.peer);
    return false;
  }
  SSL_set_accept_state(c.ssl.get());
  shm::WorkerCounters::add(counters_.handshaking);
  return true;
}

void Worker::on_connection_event(Connection& c, std::uint32_t events) noexcept {
  if ((events & (EPOLLERR | EPOLLHUP)) && !(events & EPOLLIN)) {
    close(c, "peer_closed");
    return;
  }
  drive(c);
}

void Worker::drive(Connection& c) noexcept {
  if (c.state == ConnState::handshake && !step_handshake(c)) return;
  if (c.out && !write_pushes(c)) return;
  if (c.state != ConnState::handshake && !c.paused) read_frames(c);
}

// False when the connection was closed.
bool Worker::write_pushes(Connection& c) noexcept {
  if (auto why = pushes_.write(c); !why.empty()) {
    close(c, why);
    return false;
  }
  return true;
}

// False when the handshake is not done (or failed, and the connection is closed), or did
// not fit in this pass's budget.
bool Worker::step_handshake(Connection& c) noexcept {
  if (!handshakes_.may_step()) {
    handshakes_.defer();
    return false;
  }
  const auto started = steady_clock::now();
  const bool done = advance_handshake(c);
  handshakes_.spent(steady_clock::now() - started);
  return done;
}

bool Worker::advance_handshake(Connection& c) noexcept {
  switch (tls_handshake(c)) {
    case Io::ok:
      c.state = ConnState::awaiting_login;
      c.phase_started_at = steady_clock::now();
      spdlog::debug("peer={} tls ok {} {}", c.peer.to_string(), SSL_get_version(c.ssl.get()),
                    SSL_get_cipher_name(c.ssl.get()));
      shm::WorkerCounters::sub(counters_.handshaking);
      connections_.set_interest(c, EPOLLIN);
      SSL_free_buffers(c.ssl.get());  // most devices send their login frame a moment later
      ++churn_since_trim_;
      deadlines_.schedule(c);
      return true;
    case Io::want_read:
      connections_.set_interest(c, EPOLLIN);
      return false;
    case Io::want_write:
      connections_.set_interest(c, EPOLLOUT);
      return false;
    case Io::closed:
    case Io::error: {
      const int saved = errno;
      spdlog::info("tls failed peer={}: {}", c.peer.to_string(), last_io_error(saved));
      close(c, "tls_failed");
      return false;
    }
  }
  return false;
}

void Worker::read_frames(Connection& c) noexcept {
  char buf[kReadChunk];
  const protocol::Arrival arrival = arrivals_.reading(c.arrival, wall_now());
  for (;;) {
    // Frames already buffered go first: they may fill the sink, and then reading stops.
    if (!take_buffered_frames(c, arrival) || c.paused) return;
    std::size_t got = 0;
    switch (read_some(c, buf, sizeof buf, got)) {
      case Io::ok:
        shm::WorkerCounters::add(counters_.bytes_in, got);
        c.decoder.feed(std::string_view(buf, got));
        if (has_buffered_input(c) || (!c.ssl && got == sizeof buf)) continue;
        // Read no further now: the (level-triggered) epoll says when more arrives, and
        // OpenSSL would allocate its 16 KiB read buffer again only to hit EAGAIN, then
        // keep it for as long as the device stays quiet.
        if (c.ssl) SSL_free_buffers(c.ssl.get());  // nothing pending: give them back now
        if (take_buffered_frames(c, arrival)) note_if_caught_up(c, arrival);
        return;
      case Io::want_read:
        connections_.set_interest(c, EPOLLIN);
        return;
      case Io::want_write:  // TLS 1.3 may have to write (key update) before reading on
        connections_.set_interest(c, EPOLLOUT);
        return;
      case Io::closed:
        close(c, "peer_closed");
        return;
      case Io::error: {
        const int saved = errno;
        spdlog::info("read failed device={} peer={}: {}", device_text(c), c.peer.to_string(),
                     last_io_error(saved));
        close(c, "read_error");
        return;
      }
    }
  }
}

// A connection read pass after pass keeps the bound of its streak's start (ArrivalClock);
// once that is over a second old, one FIONREAD tells whether the socket is empty now.
// Not for a paused one (it has unread bytes by definition), nor while the decoder holds
// the start of a frame (those bytes came earlier).
void Worker::note_if_caught_up(Connection& c, protocol::Arrival arrival) noexcept {
  if (c.paused || c.decoder.buffered() > 0 || arrival.latest - arrival.earliest <= kPromptRead) return;
  int unread = 0;
  if (::ioctl(c.fd.get(), FIONREAD, &unread) == 0 && unread == 0) c.arrival.caught_up(arrival.latest);
}

// False when the connection was closed.
bool Worker::take_buffered_frames(Connection& c, protocol::Arrival arrival) noexcept {
  for (;;) {
    // Room for a maximal record before a frame leaves the decoder: a frame taken out must
    // be placed, and one that cannot be stays in the decoder while the device waits.
    if (!inbound_->has_room(protocol::kMaxBody)) {
      connections_.pause(c);
      return true;
    }
    protocol::Decoded d = c.decoder.next();
    if (d.status == protocol::DecodeStatus::need_more) return true;
    if (d.status == protocol::DecodeStatus::failed) {
      close(c, protocol::name(d.error), Why::rejected);
      return false;
    }
    if (!take_frame(c, d.frame, arrival)) return false;
  }
}

// One frame: the login, or a frame of a live session, checked and then placed in the sink.
// An accepted frame touches the device directory once, through the connection's lease.
// `arrival`: when its bytes may have come (ArrivalClock), which the time check measures.
bool Worker::take_frame(Connection& c, const protocol::FrameView& frame, protocol::Arrival arrival) noexcept {
  if (c.state == ConnState::awaiting_login) {
    if (!log_in(c, frame, arrival)) return false;
  } else {
    if (!c.lease.holds()) {
      close(c, "replaced");  // another login took the device over (devices.duplicate: replace)
      return false;
    }
    if (auto error = c.session.admit(frame, arrival, c.replay)) {
      close(c, protocol::name(*error), Why::rejected);
      return false;
    }
  }
  // The device's clock against ours only where the frame was read as it came: a frame that
  // waited for us says nothing about the device's clock.
  if (arrival.latest - arrival.earliest <= kPromptRead) c.skew.add(skew_ms(frame.time, arrival.latest));
  c.lease.accept(frame.time, c.skew.value());  // the replay mark and the skew, one entry
  c.last_frame_at = steady_clock::now();
  counters_.frames_in.fetch_add(1, std::memory_order_relaxed);
  // Room was checked before next(); a refusal here is a broken invariant, never silent.
  if (!inbound_->append(frame.device, frame.body)) {
    spdlog::critical("inbound sink refused a frame of device={} after has_room(); record lost",
                     protocol::to_string(frame.device));
  }
  return true;
}

// False when the connection was closed (rejected).
bool Worker::log_in(Connection& c, const protocol::FrameView& frame, protocol::Arrival arrival) noexcept {
  if (auto refused = login_.log_in(c, frame, arrival); !refused.empty()) {
    close(c, refused, Why::rejected);
    return false;
  }
  counters_.devices.fetch_add(1, std::memory_order_relaxed);
  shm::WorkerCounters::add(counters_.logins);
  deadlines_.schedule(c);
  spdlog::info("login device={} peer={}", protocol::to_string(frame.device), c.peer.to_string());
  events_.connected(frame.device, c.peer);
  // The master sends what waits in the device's offline queue.
  master_.send(channel::Message{.cmd = channel::Cmd::device_online,
                                .peer = c.peer,
                                .device = frame.device.value,
                                .slot = c.slot,
                                .conn_generation = c.generation});
  return true;
}

void Worker::resume_paused() noexcept {
  if (!connections_.any_paused() || !inbound_->has_room(protocol::kMaxBody)) return;
  for (std::uint64_t t : connections_.take_paused()) {
    Connection* c = connections_.find(t);
    if (c == nullptr) continue;
    c->paused = false;
    c->last_frame_at = steady_clock::now();  // the wait was ours, not the device's
    connections_.set_interest(*c, EPOLLIN);
    read_frames(*c);
  }
}

void Worker::close(Connection& c, std::string_view reason, Why why) noexcept {
  if (c.state == ConnState::live) end_session(c, reason);
  if (c.state == ConnState::handshake && c.ssl) shm::WorkerCounters::sub(counters_.handshaking);
  counters_.connections.fetch_sub(1, std::memory_order_relaxed);
  counters_.count_close(reason);
  if (why == Why::rejected && c.state == ConnState::awaiting_login && c.claimed_device.value != kNoDevice) {
    directory_.note_refusal(c.claimed_device, reason, unix_seconds_now());  // devices show
  }
  if (why == Why::rejected) {
    spdlog::warn("rejected device={} peer={} reason={}", device_text(c), c.peer.to_string(), reason);
  } else {
    spdlog::info("closed device={} peer={} reason={}", device_text(c), c.peer.to_string(), reason);
  }
  tls_goodbye(c);
  master_.say(channel::Cmd::connection_closed, c.peer);
  connections_.remove(c);
  ++churn_since_trim_;
}

// A logged-in device leaves: its hold, what the registry keeps of the session, its unsent
// pushes back to the master.
void Worker::end_session(Connection& c, std::string_view reason) noexcept {
  if (auto id = c.session.device()) {
    c.lease.release();  // false when it was replaced: then it is not ours
    registry_.record_session_end(*id, std::chrono::system_clock::now(), high_mark(c.replay),
                                 session_facts(c, reason));
    counters_.devices.fetch_sub(1, std::memory_order_relaxed);
    events_.disconnected(*id, reason);  // before its unsent pushes go back (push_queued)
  }
  pushes_.hand_back(c);
}

void Worker::close_all(std::string_view reason) noexcept {
  connections_.for_each([&](Connection& c) { close(c, reason); });
}

}  // namespace iotsocket::worker
