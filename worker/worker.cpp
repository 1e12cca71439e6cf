// The worker's event loop. One pass of the loop:
//   1. wait on epoll (timeout = the earliest connection deadline, or the sink's retry);
//   2. act on the channel (new sockets, shutdown) and on connections (handshake, frames);
//   3. close connections whose deadline passed;
//   4. flush the inbound sink once for the whole pass (one lock, one write), then resume
//      connections that were paused for want of room.
// No exceptions on this path: a connection that breaks a rule is closed with a reason
// code and one log line; everything else keeps running.
#include "worker/worker.hpp"

#include <malloc.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <random>
#include <string_view>
#include <vector>

#include <spdlog/spdlog.h>

#include "common/channel.hpp"
#include "common/event_sink.hpp"
#include "common/log.hpp"
#include "common/tls.hpp"
#include "common/registry.hpp"
#include "config/reload.hpp"
#include "protocol/device_id.hpp"
#include "protocol/encoder.hpp"
#include "protocol/errors.hpp"
#include "protocol/limits.hpp"
#include "protocol/time.hpp"
#include "worker/connection.hpp"
#include "worker/deadlines.hpp"
#include "worker/inbound_sink.hpp"
#include "worker/session_facts.hpp"
#include "worker/tls_io.hpp"

namespace iotsocket::worker {
namespace {

using std::chrono::steady_clock;

// epoll data: slot in the low half, generation in the high half, so an event for a slot
// that was closed and reused within one epoll_wait batch is recognised as stale.
constexpr std::uint32_t kChannelSlot = 0xffffffff;
constexpr std::uint32_t kSinkSlot = 0xfffffffe;
constexpr std::uint64_t tag(std::uint32_t slot, std::uint32_t generation) {
  return (std::uint64_t{generation} << 32) | slot;
}

constexpr std::uint64_t kNoDevice = ~std::uint64_t{0};
constexpr std::size_t kReadChunk = 16 * 1024;  // one TLS record
constexpr std::size_t kWriteChunk = 16 * 1024;
// Connection generations fit the device table's holder word (shm::Holder).
constexpr std::uint32_t kGenerationMask = 0x0fffffff;
// How often the worker looks at the device table for connections it must close: devices
// revoked by iotsocketctl, and devices another connection took over (duplicate: replace).
constexpr auto kHolderCheckInterval = std::chrono::milliseconds(200);
constexpr int kMaxEvents = 256;
// Pushes written are reported to the master at most this often (and at once when the last
// report is older): one message per 10 ms, not per loop pass, under a stream of pushes. A
// crash can repeat what was written since the last report.
constexpr auto kSettleReportInterval = std::chrono::milliseconds(10);
// Each TLS handshake allocates and frees tens of KiB between long-lived connection state,
// and glibc keeps the freed holes resident. After a burst of handshakes, malloc_trim()
// gives them back (measured: 10,000 idle connections, 45 KiB -> 20 KiB RSS each).
constexpr std::uint32_t kTrimAfterHandshakes = 1000;
constexpr auto kTrimInterval = std::chrono::seconds(10);

protocol::Time wall_now() { return protocol::to_time(std::chrono::system_clock::now()); }

std::int64_t unix_seconds_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

protocol::SessionLimits session_limits(const config::Config& config) {
  return {.time_tolerance = std::chrono::duration_cast<protocol::Tick>(config.protocol.time_tolerance),
          .flood_frames = config.protocol.flood_frames,
          .flood_window = std::chrono::duration_cast<protocol::Tick>(config.protocol.flood_window)};
}

// The highest TIME accepted for a device: what the registry keeps between sessions.
protocol::Time high_mark(const protocol::ReplayWindow& w) {
  protocol::Time mark = w.floor;
  for (protocol::Time t : w.recent) mark = std::max(mark, t);
  return mark;
}

class Worker {
 public:
  Worker(WorkerSetup setup, DeviceRegistry registry, InboundSink sink, Fd epoll)
      : config_(*setup.config),
        tls_(setup.tls),
        directory_(*setup.table),
        counters_(setup.table->counters(setup.index)),
        index_(setup.index),
        channel_(std::move(setup.channel)),
        generation_(setup.generation),
        replay_floor_(setup.replay_floor),
        registry_(std::move(registry)),
        sink_(std::move(sink)),
        epoll_(std::move(epoll)),
        limits_(session_limits(config_)),
        events_(EventSinkOptions{.path = config_.fifo.events}) {}

  int run() noexcept;

 private:
  // channel
  bool watch_channel() noexcept;
  void on_channel() noexcept;
  void adopt(Fd socket, const PeerAddress& peer) noexcept;
  // Both return "" when done, else why this worker kept what it had (told to the master).
  std::string reload_tls(const std::string& payload) noexcept;
  std::string reload_settings() noexcept;
  void say_to_master(channel::Cmd cmd, const PeerAddress& peer = {}) noexcept;
  void send_to_master(const channel::Message& m, std::string payload = {}) noexcept;
  void flush_outbox() noexcept;
  void report_settled(SteadyTime now, bool now_or_never = false) noexcept;
  void watch_channel_writable(bool on) noexcept;

  // pushes
  void on_push(channel::Received& r) noexcept;
  void queue_push(Connection& c, std::string payload, const channel::Message& m) noexcept;
  bool write_pending(Connection& c) noexcept;
  void return_unsent(Connection& c) noexcept;
  shm::Holder holder_of(const Connection& c) const noexcept {
    return shm::Holder{.worker = index_, .slot = c.slot, .conn_generation = c.generation};
  }
  void check_holds(SteadyTime now) noexcept;
  void pass_fence(const channel::Message& m) noexcept;
  bool claim_device(Connection& c, const protocol::FrameView& frame, protocol::Time now,
                    protocol::Time kept_mark, shm::ClaimResult& claim) noexcept;

  // connections
  Connection* lookup(std::uint64_t data) noexcept;
  void on_connection_event(Connection& c, std::uint32_t events) noexcept;
  void drive(Connection& c) noexcept;
  bool advance_handshake(Connection& c) noexcept;
  void read_frames(Connection& c) noexcept;
  bool take_buffered_frames(Connection& c) noexcept;
  bool take_frame(Connection& c, const protocol::FrameView& frame) noexcept;
  bool log_in(Connection& c, const protocol::FrameView& frame, protocol::Time now) noexcept;
  void pause(Connection& c) noexcept;
  void resume_paused() noexcept;
  void set_interest(Connection& c, std::uint32_t events) noexcept;
  // Ends a connection with one log line: "rejected" (at warn) when the device broke a
  // rule, "closed" otherwise (timeouts, the peer left, shutdown).
  enum class Why { closed, rejected };
  void close(Connection& c, std::string_view reason, Why why = Why::closed) noexcept;
  void close_all(std::string_view reason) noexcept;

  // shutdown: connections close one by one, spread over the drain period
  void begin_drain(std::chrono::milliseconds period) noexcept;
  void drain_step(SteadyTime now) noexcept;
  std::optional<SteadyTime> next_drain_close() const noexcept;
  void close_for_shutdown(Connection& c) noexcept;

  // deadlines
  SteadyTime deadline_of(const Connection& c) const noexcept;
  void schedule(Connection& c) noexcept;
  void expire_deadlines(SteadyTime now) noexcept;

  // inbound
  void flush_inbound() noexcept;
  int wait_timeout(SteadyTime now) const noexcept;

  std::string device_text(const Connection& c) const {
    auto id = c.session.device();
    if (!id && c.claimed_device.value != kNoDevice) id = c.claimed_device;
    return id ? protocol::to_string(*id) : std::string("-");
  }

  config::Config config_;  // a copy: a reload changes the reloadable settings
  SSL_CTX* tls_;          // for new handshakes: the inherited context or the last reload's
  SslCtx reloaded_tls_;   // owns the last reload's (connections keep a reference to theirs)
  shm::DeviceDirectory& directory_;
  shm::WorkerCounters& counters_;
  std::uint32_t index_;
  Fd channel_;
  std::uint32_t generation_;
  protocol::Time replay_floor_;
  DeviceRegistry registry_;
  InboundSink sink_;
  Fd epoll_;
  protocol::SessionLimits limits_;
  EventSink events_;  // connected, disconnected, push_delivered

  std::vector<std::unique_ptr<Connection>> slots_;
  std::vector<std::uint32_t> free_slots_;
  std::vector<std::uint64_t> paused_;  // tags of paused connections
  std::size_t live_connections_ = 0;
  std::uint32_t next_generation_ = 1;
  DeadlineQueue deadlines_;
  int sink_watched_fd_ = -1;
  bool fd_shortage_logged_ = false;
  std::uint32_t handshakes_since_trim_ = 0;
  struct Outgoing {
    channel::Message message;
    std::string payload;
  };
  std::deque<Outgoing> outbox_;  // messages to the master while its channel is full
  // Numbers of pushes written whole (or dropped) since the master was last told: it keeps a
  // copy of each until then, for the case that this process dies.
  std::vector<std::uint64_t> settled_;
  SteadyTime last_settle_report_{};
  bool channel_writable_watched_ = false;
  std::uint64_t seen_close_epoch_ = 0;
  SteadyTime next_holder_check_{};
  SteadyTime last_trim_{};
  std::uint64_t frames_in_at_start_ = 0;  // the counter goes on across respawns (exit log line)
  bool draining_ = false;
  bool said_drained_ = false;
  SteadyTime drain_started_{};
  std::chrono::milliseconds drain_period_{};
  std::vector<std::uint64_t> drain_order_;  // tags of the connections, in closing order
  std::size_t drain_next_ = 0;
  bool stopping_ = false;  // leave the loop: `finish` came, or the master is gone
};

// ---- channel --------------------------------------------------------------------------

bool Worker::watch_channel() noexcept {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = tag(kChannelSlot, 0);
  return ::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, channel_.get(), &ev) == 0;
}

void Worker::say_to_master(channel::Cmd cmd, const PeerAddress& peer) noexcept {
  send_to_master(channel::Message{.cmd = cmd, .generation = generation_, .peer = peer});
}

// Messages keep their order: while any wait in the outbox, new ones queue behind them.
void Worker::send_to_master(const channel::Message& m, std::string payload) noexcept {
  events_.flush();  // our events before anything the master writes in answer
  if (outbox_.empty()) {
    const Io io = channel::carries_payload(m.cmd)
                               ? channel::send(channel_.get(), m, payload)
                               : channel::send(channel_.get(), m);
    if (io == Io::ok) return;
    if (io != Io::want_write) {
      spdlog::warn("cannot tell the master (cmd {}): {}", static_cast<int>(m.cmd),
                   std::strerror(errno));
      return;
    }
  }
  outbox_.push_back(Outgoing{m, std::move(payload)});
  watch_channel_writable(true);
}

// One message for the pushes written since the last report, once kSettleReportInterval
// has passed since that one (or a message's worth is ready, or the worker is exiting).
void Worker::report_settled(SteadyTime now, bool now_or_never) noexcept {
  if (settled_.empty()) return;
  if (!now_or_never && settled_.size() < channel::kSeqsPerMessage &&
      now - last_settle_report_ < kSettleReportInterval) {
    return;
  }
  last_settle_report_ = now;
  for (std::size_t at = 0; at < settled_.size(); at += channel::kSeqsPerMessage) {
    const std::size_t count = std::min(channel::kSeqsPerMessage, settled_.size() - at);
    send_to_master(channel::Message{.cmd = channel::Cmd::pushes_settled, .generation = generation_},
                   channel::encode_settled(std::span(settled_).subspan(at, count)));
  }
  settled_.clear();
}

void Worker::flush_outbox() noexcept {
  while (!outbox_.empty()) {
    const Outgoing& o = outbox_.front();
    const Io io = channel::carries_payload(o.message.cmd)
                               ? channel::send(channel_.get(), o.message, o.payload)
                               : channel::send(channel_.get(), o.message);
    if (io == Io::want_write) return;
    if (io != Io::ok) {
      spdlog::warn("cannot tell the master (cmd {}): {}", static_cast<int>(o.message.cmd),
                   std::strerror(errno));
    }
    outbox_.pop_front();
  }
  watch_channel_writable(false);
}

void Worker::watch_channel_writable(bool on) noexcept {
  if (channel_writable_watched_ == on) return;
  epoll_event ev{};
  ev.events = EPOLLIN | (on ? std::uint32_t{EPOLLOUT} : 0u);
  ev.data.u64 = tag(kChannelSlot, 0);
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, channel_.get(), &ev) == 0) {
    channel_writable_watched_ = on;
  }
}

void Worker::on_channel() noexcept {
  for (;;) {
    channel::Received r = channel::receive(channel_.get());
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
      // No descriptor was free here; the kernel closed the socket. Tell the master, whose
      // counts include it, and say so once per shortage.
      if (!fd_shortage_logged_) {
        spdlog::warn("out of file descriptors (EMFILE): connections handed over are being "
                     "dropped, first peer={}", r.message.peer.to_string());
        fd_shortage_logged_ = true;
      }
      say_to_master(channel::Cmd::connection_closed, r.message.peer);
    } else if (r.message.cmd == channel::Cmd::new_connection) {
      fd_shortage_logged_ = false;
      adopt(std::move(r.fd), r.message.peer);
    } else if (r.message.cmd == channel::Cmd::push) {
      on_push(r);
    } else if (r.message.cmd == channel::Cmd::reload_tls) {
      send_to_master(channel::Message{.cmd = channel::Cmd::reloaded, .generation = generation_},
                     reload_tls(r.payload));
    } else if (r.message.cmd == channel::Cmd::reload_settings) {
      send_to_master(channel::Message{.cmd = channel::Cmd::reloaded, .generation = generation_},
                     reload_settings());
    } else if (r.message.cmd == channel::Cmd::reopen_log) {
      if (auto error = log::reopen()) spdlog::error("cannot reopen {}: {}", log::file(), *error);
    } else if (r.message.cmd == channel::Cmd::shutdown) {
      begin_drain(config_.shutdown.drain);
    } else if (r.message.cmd == channel::Cmd::stop_now) {
      begin_drain(std::chrono::milliseconds(0));
    } else if (r.message.cmd == channel::Cmd::finish) {
      stopping_ = true;
    } else if (r.message.cmd == channel::Cmd::fence) {
      pass_fence(r.message);
    }
  }
}

// The master has checked these files; they are loaded again here because a context
// cannot cross fork(). Should that fail (the files changed in between), the old one stays.
std::string Worker::reload_tls(const std::string& payload) noexcept {
  const auto files = channel::decode_tls_files(payload);
  if (tls_ == nullptr || !files) return "no TLS context to replace";
  auto made = make_server_context(files->cert, files->key);
  if (!made) {
    spdlog::error("reload refused, the running certificate stays: tls: {}", made.error());
    return "tls: " + made.error();
  }
  // Keys inherited from the master: every worker's tickets resume on every other.
  if (!copy_ticket_keys(tls_, made->get())) spdlog::warn("reload: cannot carry the session-ticket keys over");
  reloaded_tls_ = std::move(*made);
  tls_ = reloaded_tls_.get();
  spdlog::info("reload: new handshakes use {}", files->cert);
  return {};
}

// The master has checked the file; it is read again here because the settings cannot
// cross the channel whole. Should that fail (the file changed in between), this worker
// keeps its settings and says so.
std::string Worker::reload_settings() noexcept {
  auto loaded = config::load_file(config_.path);
  if (!loaded) {
    const std::string why = loaded.error().front().to_string();
    spdlog::error("reload: this worker keeps its settings: {}", why);
    return why;
  }
  const config::Config merged = config::with_reloadable(config_, *loaded);
  if (merged.devices.sqlite != config_.devices.sqlite) {
    auto opened = DeviceRegistry::open(merged.devices.sqlite, DeviceRegistry::Mode::read_write);
    if (!opened) {
      spdlog::error("reload: this worker keeps its settings: devices.sqlite: {}", opened.error());
      return "devices.sqlite: " + opened.error();
    }
    registry_ = std::move(*opened);
  }
  config_ = merged;
  limits_ = session_limits(config_);  // for connections accepted from now on
  log::set_level(log::parse_level(config_.log.level).value_or(spdlog::level::info));
  spdlog::info("reload: settings applied");
  return {};
}

void Worker::adopt(Fd socket, const PeerAddress& peer) noexcept {
  if (draining_) {
    // Handed over just before the master stopped accepting.
    spdlog::info("closed device=- peer={} reason=server_shutdown", peer.to_string());
    counters_.count_close("server_shutdown");
    say_to_master(channel::Cmd::connection_closed, peer);
    return;
  }
  std::uint32_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    slot = static_cast<std::uint32_t>(slots_.size());
    slots_.emplace_back();
  }
  auto c = std::make_unique<Connection>(std::move(socket), peer, limits_);
  c->slot = slot;
  c->generation = next_generation_;
  next_generation_ = (next_generation_ + 1) & kGenerationMask;
  if (next_generation_ == 0) next_generation_ = 1;
  c->accepted_at = steady_clock::now();
  if (tls_ != nullptr) {
    c->ssl.reset(SSL_new(tls_));
    if (!c->ssl || SSL_set_fd(c->ssl.get(), c->fd.get()) != 1) {
      spdlog::error("peer={} SSL_new failed: {}", peer.to_string(), drain_tls_errors());
      say_to_master(channel::Cmd::connection_closed, peer);
      free_slots_.push_back(slot);
      return;
    }
    SSL_set_accept_state(c->ssl.get());
    shm::WorkerCounters::add(counters_.handshaking);
  } else {
    c->state = ConnState::awaiting_login;
    c->phase_started_at = c->accepted_at;
  }
  Connection& conn = *c;
  slots_[slot] = std::move(c);
  ++live_connections_;
  counters_.connections.fetch_add(1, std::memory_order_relaxed);
  spdlog::info("accepted peer={}", peer.to_string());

  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = tag(slot, conn.generation);
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, conn.fd.get(), &ev) != 0) {
    spdlog::error("peer={} epoll_ctl(ADD) failed: {}", peer.to_string(), std::strerror(errno));
    close(conn, "worker_error");
    return;
  }
  conn.epoll_events = EPOLLIN;
  schedule(conn);
  drive(conn);  // a TLS ClientHello may already be waiting
}

// ---- connections ----------------------------------------------------------------------

Connection* Worker::lookup(std::uint64_t data) noexcept {
  auto slot = static_cast<std::uint32_t>(data);
  auto generation = static_cast<std::uint32_t>(data >> 32);
  if (slot >= slots_.size() || !slots_[slot] || slots_[slot]->generation != generation) {
    return nullptr;
  }
  return slots_[slot].get();
}

void Worker::on_connection_event(Connection& c, std::uint32_t events) noexcept {
  if ((events & (EPOLLERR | EPOLLHUP)) && !(events & EPOLLIN)) {
    close(c, "peer_closed");
    return;
  }
  drive(c);
}

void Worker::drive(Connection& c) noexcept {
  if (c.state == ConnState::handshake && !advance_handshake(c)) return;
  if (c.out && !write_pending(c)) return;
  if (c.state != ConnState::handshake && !c.paused) read_frames(c);
}

bool Worker::advance_handshake(Connection& c) noexcept {
  switch (tls_handshake(c)) {
    case Io::ok: {
      c.state = ConnState::awaiting_login;
      c.phase_started_at = steady_clock::now();
      const char* version = SSL_get_version(c.ssl.get());
      spdlog::debug("peer={} tls ok {} {}", c.peer.to_string(), version,
                    SSL_get_cipher_name(c.ssl.get()));
      shm::WorkerCounters::sub(counters_.handshaking);
      set_interest(c, EPOLLIN);
      SSL_free_buffers(c.ssl.get());  // most devices send their login frame a moment later
      ++handshakes_since_trim_;
      schedule(c);
      return true;
    }
    case Io::want_read:
      set_interest(c, EPOLLIN);
      return false;
    case Io::want_write:
      set_interest(c, EPOLLOUT);
      return false;
    case Io::closed:
    case Io::error: {
      int saved = errno;
      spdlog::info("tls failed peer={}: {}", c.peer.to_string(), last_io_error(saved));
      close(c, "tls_failed");
      return false;
    }
  }
  return false;
}

void Worker::read_frames(Connection& c) noexcept {
  char buf[kReadChunk];
  for (;;) {
    // Frames already buffered go first: they may fill the sink, and then reading stops.
    if (!take_buffered_frames(c) || c.paused) return;
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
        take_buffered_frames(c);
        return;
      case Io::want_read:
        set_interest(c, EPOLLIN);
        return;
      case Io::want_write:  // TLS 1.3 may have to write (key update) before reading on
        set_interest(c, EPOLLOUT);
        return;
      case Io::closed:
        close(c, "peer_closed");
        return;
      case Io::error: {
        int saved = errno;
        spdlog::info("read failed device={} peer={}: {}", device_text(c), c.peer.to_string(),
                     last_io_error(saved));
        close(c, "read_error");
        return;
      }
    }
  }
}

// False when the connection was closed.
bool Worker::take_buffered_frames(Connection& c) noexcept {
  for (;;) {
    // Room for a maximal record before a frame leaves the decoder: a frame taken out must
    // be placed, and one that cannot be stays in the decoder while the device waits.
    if (!sink_.has_room(protocol::kMaxBody)) {
      pause(c);
      return true;
    }
    protocol::Decoded d = c.decoder.next();
    if (d.status == protocol::DecodeStatus::need_more) return true;
    if (d.status == protocol::DecodeStatus::failed) {
      close(c, protocol::name(d.error), Why::rejected);
      return false;
    }
    if (!take_frame(c, d.frame)) return false;
  }
}

bool Worker::take_frame(Connection& c, const protocol::FrameView& frame) noexcept {
  const protocol::Time now = wall_now();
  if (c.state == ConnState::awaiting_login) {
    if (!log_in(c, frame, now)) return false;
  } else {
    if (!c.lease.holds()) {
      close(c, "replaced");  // another login took the device over (devices.duplicate: replace)
      return false;
    }
    if (auto error = c.session.admit(frame, now, c.replay)) {
      close(c, protocol::name(*error), Why::rejected);
      return false;
    }
  }
  c.skew.add(skew_ms(frame.time, now));
  c.lease.accept(frame.time, c.skew.value());  // the replay mark and the skew, one entry
  c.last_frame_at = steady_clock::now();
  counters_.frames_in.fetch_add(1, std::memory_order_relaxed);
  // Room was checked before next(); a refusal here is a broken invariant, never silent.
  if (!sink_.append(frame.device, frame.body)) {
    spdlog::critical("inbound sink refused a frame of device={} after has_room(); record lost",
                     protocol::to_string(frame.device));
  }
  return true;
}

bool Worker::log_in(Connection& c, const protocol::FrameView& frame, protocol::Time now) noexcept {
  c.claimed_device = frame.device;  // for the log lines, until the login succeeds
  auto reject = [&](std::string_view reason) {
    close(c, reason, Why::rejected);
    return false;
  };
  // Unknown device, disabled device and wrong key are told apart here, in the log, only:
  // the device sees the same close after the same work (the registry hashes either way).
  LoginCheck check = registry_.verify(frame.device, frame.key);
  if (check != LoginCheck::ok) return reject(name(check));

  // The registry keeps the mark across server restarts, the table across reconnects.
  const protocol::Time kept =
      std::max(replay_floor_, registry_.replay_mark(frame.device).value_or(protocol::Time{}));
  shm::ClaimResult claim;
  if (!claim_device(c, frame, now, kept, claim)) return false;
  const protocol::Time mark = std::max(claim.replay_mark, kept);
  c.replay = protocol::ReplayWindow::starting_at(mark);
  c.push_times = protocol::TimeStamper(claim.push_mark);
  c.lease = claim.lease;
  if (auto error = c.session.admit(frame, now, c.replay)) {
    c.lease.release();
    return reject(protocol::name(*error));
  }
  c.lease.raise_replay_mark(frame.time);
  c.state = ConnState::live;
  c.login_unix = unix_seconds_now();
  counters_.devices.fetch_add(1, std::memory_order_relaxed);
  shm::WorkerCounters::add(counters_.logins);
  schedule(c);
  spdlog::info("login device={} peer={}", protocol::to_string(frame.device), c.peer.to_string());
  events_.connected(frame.device, c.peer);
  // The master sends what waits in the device's offline queue.
  send_to_master(channel::Message{.cmd = channel::Cmd::device_online,
                                  .generation = generation_,
                                  .peer = c.peer,
                                  .device = frame.device.value,
                                  .slot = c.slot,
                                  .conn_generation = c.generation});
  return true;
}

// Clone protection (docs/PROTOCOL.md): one connection per device across all workers, decided by
// one compare-and-swap in the device table. False when the connection was closed.
bool Worker::claim_device(Connection& c, const protocol::FrameView& frame, protocol::Time now,
                          protocol::Time kept_mark, shm::ClaimResult& claim) noexcept {
  const shm::Holder me = holder_of(c);
  claim = directory_.claim(frame.device, me, c.peer, unix_seconds_now());
  if (claim.status == shm::ClaimStatus::held) {
    const auto other = directory_.find(frame.device);
    const std::string other_peer = other ? other->peer.to_string() : std::string("-");
    if (config_.devices.duplicate == config::DuplicatePolicy::replace) {
      // A stale or replayed frame must not displace the device's live connection: the
      // time checks come before the takeover (the session repeats them after it).
      std::optional<protocol::FrameError> stale;
      if (!protocol::within_tolerance(frame.time, now, limits_.time_tolerance)) {
        stale = protocol::FrameError::time_skew;
      } else if (frame.time <= std::max(claim.replay_mark, kept_mark)) {
        stale = protocol::FrameError::replayed_time;
      }
      if (stale) {
        close(c, protocol::name(*stale), Why::rejected);
        return false;
      }
      claim = directory_.take_over(frame.device, claim.previous, me, c.peer, unix_seconds_now());
      if (claim.status == shm::ClaimStatus::claimed) {
        spdlog::warn("duplicate login device={} peer={}: replaces the connection from peer={} "
                     "(devices.duplicate: replace)",
                     protocol::to_string(frame.device), c.peer.to_string(), other_peer);
        return true;
      }
    }
    if (claim.status == shm::ClaimStatus::held) {
      spdlog::warn("duplicate login device={} peer={}: already connected from peer={}; refused",
                   protocol::to_string(frame.device), c.peer.to_string(), other_peer);
      close(c, "duplicate_login", Why::rejected);
      return false;
    }
  }
  if (claim.status == shm::ClaimStatus::table_full) {
    spdlog::error("device table full ({} devices, limits.max_devices); device={} refused",
                  directory_.capacity(), protocol::to_string(frame.device));
    close(c, "device_table_full", Why::rejected);
    return false;
  }
  return true;
}

void Worker::set_interest(Connection& c, std::uint32_t events) noexcept {
  if (c.out && c.out->unsent() > 0) events |= EPOLLOUT;  // pushes wait to be written
  if (c.epoll_events == events) return;
  epoll_event ev{};
  ev.events = events;
  ev.data.u64 = tag(c.slot, c.generation);
  if (::epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, c.fd.get(), &ev) == 0) c.epoll_events = events;
}

void Worker::pause(Connection& c) noexcept {
  if (c.paused) return;
  c.paused = true;
  set_interest(c, 0);
  paused_.push_back(tag(c.slot, c.generation));
}

void Worker::resume_paused() noexcept {
  if (paused_.empty() || !sink_.has_room(protocol::kMaxBody)) return;
  std::vector<std::uint64_t> waiting;
  waiting.swap(paused_);
  for (std::uint64_t t : waiting) {
    Connection* found = lookup(t);
    if (found == nullptr) continue;
    Connection& c = *found;
    c.paused = false;
    c.last_frame_at = steady_clock::now();  // the wait was ours, not the device's
    set_interest(c, EPOLLIN);
    read_frames(c);
  }
}

void Worker::close(Connection& c, std::string_view reason, Why why) noexcept {
  const std::uint32_t slot = c.slot;
  if (c.state == ConnState::live) {
    if (auto id = c.session.device()) {
      c.lease.release();  // false when it was replaced: then it is not ours
      registry_.record_session_end(*id, std::chrono::system_clock::now(), high_mark(c.replay),
                                   session_facts(c, reason));
      counters_.devices.fetch_sub(1, std::memory_order_relaxed);
      events_.disconnected(*id, reason);  // before its unsent pushes go back (push_queued)
    }
    return_unsent(c);
  }
  if (c.state == ConnState::handshake && c.ssl) shm::WorkerCounters::sub(counters_.handshaking);
  counters_.connections.fetch_sub(1, std::memory_order_relaxed);
  counters_.count_close(reason);
  if (why == Why::rejected && c.state == ConnState::awaiting_login &&
      c.claimed_device.value != kNoDevice) {
    directory_.note_refusal(c.claimed_device, reason, unix_seconds_now());  // devices show
  }
  if (why == Why::rejected) {
    spdlog::warn("rejected device={} peer={} reason={}", device_text(c), c.peer.to_string(), reason);
  } else {
    spdlog::info("closed device={} peer={} reason={}", device_text(c), c.peer.to_string(), reason);
  }
  tls_goodbye(c);
  say_to_master(channel::Cmd::connection_closed, c.peer);
  // close() removes the socket from epoll.
  slots_[slot].reset();
  free_slots_.push_back(slot);
  --live_connections_;
}

void Worker::close_all(std::string_view reason) noexcept {
  for (auto& c : slots_) {
    if (c) close(*c, reason);
  }
}

// ---- shutdown -------------------------------------------------------------------------
//
// The connections are closed in a random order, evenly spread over the drain period, so
// that devices of every worker come back to a restarted server a few at a time. Until its
// turn a connection works as always (frames in, pushes out); at its turn, what it can
// still write is written, and the rest of its pushes go back to the offline queue.

void Worker::begin_drain(std::chrono::milliseconds period) noexcept {
  const SteadyTime now = steady_clock::now();
  if (!draining_) {
    draining_ = true;
    drain_started_ = now;
    for (const auto& c : slots_) {
      if (c) drain_order_.push_back(tag(c->slot, c->generation));
    }
    std::minstd_rand random(static_cast<std::uint32_t>(::getpid()) ^
                            static_cast<std::uint32_t>(now.time_since_epoch().count()));
    std::shuffle(drain_order_.begin(), drain_order_.end(), random);
    spdlog::info("stopping: closing {} connections over {} ms", drain_order_.size(), period.count());
  } else {
    spdlog::info("stopping now: closing the {} connections left", live_connections_);
  }
  drain_period_ = period;  // 0 (stop_now): every one left is due at once
  drain_step(now);
}

std::optional<SteadyTime> Worker::next_drain_close() const noexcept {
  if (!draining_ || drain_next_ >= drain_order_.size()) return std::nullopt;
  return drain_started_ + drain_period_ * static_cast<std::int64_t>(drain_next_) /
                              static_cast<std::int64_t>(drain_order_.size());
}

void Worker::drain_step(SteadyTime now) noexcept {
  if (!draining_) return;
  for (auto due = next_drain_close(); due && *due <= now; due = next_drain_close()) {
    if (Connection* c = lookup(drain_order_[drain_next_])) close_for_shutdown(*c);
    ++drain_next_;
  }
  if (live_connections_ == 0 && !said_drained_) {
    // The master answers with `finish`, behind any push still on its way here.
    said_drained_ = true;
    say_to_master(channel::Cmd::drained);
  }
}

void Worker::close_for_shutdown(Connection& c) noexcept {
  if (c.out && !write_pending(c)) return;  // closed while writing
  close(c, "server_shutdown");
}

// ---- pushes ---------------------------------------------------------------------------

void Worker::on_push(channel::Received& r) noexcept {
  const channel::Message& m = r.message;
  Connection* c = lookup(tag(m.slot, m.conn_generation));
  if (c == nullptr || c->state != ConnState::live || !c->session.device() ||
      c->session.device()->value != m.device) {
    // The connection closed while the push was on its way: back to the master.
    send_to_master(channel::Message{.cmd = channel::Cmd::push_returned,
                                    .generation = generation_,
                                    .device = m.device,
                                    .slot = m.slot,
                                    .conn_generation = m.conn_generation,
                                    .queued_at_ns = m.queued_at_ns,
                                    .seq = m.seq},
                   std::move(r.payload));
    return;
  }
  queue_push(*c, std::move(r.payload), m);
}

// Frames the push behind what the connection has not written yet and writes what it can.
// A device that does not read is closed once its unsent bytes exceed push.write_queue;
// its unsent pushes go back to the master (and so to its offline queue).
void Worker::queue_push(Connection& c, std::string payload, const channel::Message& m) noexcept {
  if (!c.out) c.out = std::make_unique<WriteQueue>();
  WriteQueue& q = *c.out;
  const std::size_t before = q.bytes.size();
  const auto time = c.push_times.next(wall_now(), limits_.time_tolerance);
  std::optional<protocol::FrameError> error;
  if (time) error = protocol::append_push_frame(q.bytes, *c.session.device(), *time, payload);
  if (error) {
    // The master checked the payload (parse_record); this is a broken invariant.
    spdlog::critical("device={} push not framed: {}; dropped", device_text(c),
                     protocol::name(*error));
    settled_.push_back(m.seq);
    if (q.entries.empty() && q.unsent() == 0) c.out.reset();
    return;
  }
  // Unframed (end past the bytes) when it cannot be sent: it is handed back with the rest.
  q.entries.push_back(WriteQueue::Entry{.end = time ? q.bytes.size() : ~std::size_t{0},
                                        .payload = std::move(payload),
                                        .queued_at_ns = m.queued_at_ns,
                                        .seq = m.seq});
  if (!time) {
    // More than one push per 0.1 ms for the whole time tolerance: the device would refuse
    // TIMEs that far ahead of its clock.
    close(c, "push_rate");
    return;
  }
  if (q.unsent() > config_.push.write_queue && before > q.written) {
    close(c, "write_queue_full");
    return;
  }
  c.lease.raise_push_mark(*time);
  if (q.retry_len == 0) write_pending(c);
}

// False when the connection was closed.
bool Worker::write_pending(Connection& c) noexcept {
  WriteQueue& q = *c.out;
  while (q.unsent() > 0) {
    const std::size_t len = q.retry_len != 0 ? q.retry_len : std::min(q.unsent(), kWriteChunk);
    std::size_t wrote = 0;
    switch (write_some(c, q.bytes.data() + q.written, len, wrote)) {
      case Io::ok:
        q.retry_len = 0;
        q.written += wrote;
        shm::WorkerCounters::add(counters_.bytes_out, wrote);
        break;
      case Io::want_write:
      case Io::want_read:
        q.retry_len = len;
        set_interest(c, c.paused ? 0u : std::uint32_t{EPOLLIN});
        return true;
      case Io::closed:
        close(c, "peer_closed");
        return false;
      case Io::error: {
        int saved = errno;
        spdlog::info("write failed device={} peer={}: {}", device_text(c), c.peer.to_string(),
                     last_io_error(saved));
        close(c, "write_error");
        return false;
      }
    }
    std::size_t done = 0;
    while (done < q.entries.size() && q.entries[done].end <= q.written) ++done;
    if (done > 0) {
      counters_.pushes_out.fetch_add(done, std::memory_order_relaxed);
      for (std::size_t i = 0; i < done; ++i) {
        events_.push_delivered(*c.session.device());
        settled_.push_back(q.entries[i].seq);
      }
      q.entries.erase(q.entries.begin(), q.entries.begin() + static_cast<std::ptrdiff_t>(done));
    }
  }
  c.out.reset();  // all written: give the memory back
  set_interest(c, c.paused ? 0u : std::uint32_t{EPOLLIN});
  return true;
}

// Hands the pushes a closing connection did not write completely back to the master, in
// order, as one batch. A push cut in the middle is sent again: at least once, not lost.
void Worker::return_unsent(Connection& c) noexcept {
  if (!c.out) return;
  auto& entries = c.out->entries;
  const std::uint64_t device = c.session.device() ? c.session.device()->value : 0;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    send_to_master(channel::Message{.cmd = channel::Cmd::push_returned,
                                    .generation = generation_,
                                    .device = device,
                                    .slot = c.slot,
                                    .conn_generation = c.generation,
                                    .queued_at_ns = entries[i].queued_at_ns,
                                    .more = i + 1 < entries.size(),
                                    .seq = entries[i].seq},
                   std::move(entries[i].payload));
  }
  if (!entries.empty()) {
    spdlog::info("device={} {} unsent pushes go back to its offline queue", device_text(c),
                 entries.size());
  }
  c.out.reset();
}

// Closes connections that are no longer theirs to keep: the device was taken over by
// another login, or iotsocketctl revoked it (disable, remove).
void Worker::check_holds(SteadyTime now) noexcept {
  if (now < next_holder_check_) return;
  next_holder_check_ = now + kHolderCheckInterval;
  const std::uint64_t epoch = directory_.close_epoch();
  const bool requests = epoch != seen_close_epoch_;
  seen_close_epoch_ = epoch;
  for (std::size_t i = 0; i < slots_.size(); ++i) {
    Connection* c = slots_[i].get();
    if (c == nullptr || c->state != ConnState::live || !c->session.device()) continue;
    const protocol::DeviceId id = *c->session.device();
    if (!c->lease.holds()) {
      close(*c, "replaced");
    } else if (requests && directory_.take_close_request(id)) {
      close(*c, "revoked");
    }
  }
}

// The device logged in on another connection while pushes were on their way here. Those
// have been handed back by now (on_push, in channel order); a connection that was replaced
// but has not noticed yet is closed first, so that its unwritten pushes come back too.
void Worker::pass_fence(const channel::Message& m) noexcept {
  Connection* c = lookup(tag(m.slot, m.conn_generation));
  if (c != nullptr && c->state == ConnState::live && c->session.device() &&
      c->session.device()->value == m.device && !c->lease.holds()) {
    close(*c, "replaced");
  }
  send_to_master(channel::Message{.cmd = channel::Cmd::fence, .generation = generation_, .device = m.device});
}

// ---- deadlines ------------------------------------------------------------------------

SteadyTime Worker::deadline_of(const Connection& c) const noexcept {
  const auto& t = config_.timeouts;
  const SteadyTime too_old = c.accepted_at + t.max_connection_age;
  switch (c.state) {
    case ConnState::handshake:
      return c.accepted_at + t.handshake;
    case ConnState::awaiting_login:
      return std::min(c.phase_started_at + t.first_frame, too_old);
    case ConnState::live:
      // A paused connection is silent because of us; only its age counts then.
      return c.paused ? too_old : std::min(c.last_frame_at + t.idle, too_old);
  }
  return too_old;
}

void Worker::schedule(Connection& c) noexcept {
  const SteadyTime at = deadline_of(c);
  if (c.queued_at != SteadyTime{} && c.queued_at <= at) return;  // an entry will come first
  c.queued_at = at;
  deadlines_.push(at, c.slot, c.generation);
}

void Worker::expire_deadlines(SteadyTime now) noexcept {
  while (!deadlines_.empty() && deadlines_.top().at <= now) {
    DeadlineEntry e = deadlines_.top();
    deadlines_.pop();
    Connection* c = lookup(tag(e.slot, e.generation));
    if (c == nullptr || c->queued_at != e.at) continue;  // closed, or a stale entry
    c->queued_at = SteadyTime{};
    if (deadline_of(*c) > now) {
      schedule(*c);
      continue;
    }
    const bool too_old = now >= c->accepted_at + config_.timeouts.max_connection_age;
    switch (c->state) {
      case ConnState::handshake:
        close(*c, "handshake_timeout");
        break;
      case ConnState::awaiting_login:
        close(*c, too_old ? "max_age" : "first_frame_timeout");
        break;
      case ConnState::live:
        close(*c, too_old ? "max_age" : "idle_timeout");
        break;
    }
  }
}

// ---- inbound --------------------------------------------------------------------------

void Worker::flush_inbound() noexcept {
  sink_.flush();
  shm::WorkerCounters::set(counters_.spool_bytes, sink_.spooled_bytes());
  shm::WorkerCounters::set(counters_.memory_bytes, sink_.pending_bytes());
  const int fd = sink_.writable_fd();
  if (fd != sink_watched_fd_) {
    if (sink_watched_fd_ >= 0) ::epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, sink_watched_fd_, nullptr);
    sink_watched_fd_ = -1;
    if (fd >= 0) {
      epoll_event ev{};
      ev.events = EPOLLOUT;
      ev.data.u64 = tag(kSinkSlot, 0);
      if (::epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &ev) == 0) sink_watched_fd_ = fd;
    }
  }
  resume_paused();
}

int Worker::wait_timeout(SteadyTime now) const noexcept {
  int timeout = deadlines_.timeout_ms(now);  // -1: no deadline
  const auto at_most = [&timeout](long long ms) {
    const int bounded = static_cast<int>(std::max<long long>(ms, 0));
    timeout = timeout < 0 ? bounded : std::min(timeout, bounded);
  };
  const auto until = [now](SteadyTime t) {
    return std::chrono::ceil<std::chrono::milliseconds>(t - now).count();
  };
  at_most(until(next_holder_check_));
  if (auto retry = sink_.retry_in()) at_most(std::max<long long>(retry->count(), 1));
  if (auto retry = events_.retry_in()) at_most(retry->count());
  if (auto due = next_drain_close()) at_most(until(*due));
  if (!settled_.empty()) at_most(until(last_settle_report_ + kSettleReportInterval));
  return timeout;
}

// ---- the loop -------------------------------------------------------------------------

int Worker::run() noexcept {
  if (!watch_channel()) {
    spdlog::critical("epoll_ctl(channel) failed: {}", std::strerror(errno));
    return 1;
  }
  counters_.pid.store(::getpid(), std::memory_order_relaxed);
  frames_in_at_start_ = counters_.frames_in.load(std::memory_order_relaxed);
  seen_close_epoch_ = directory_.close_epoch();
  say_to_master(channel::Cmd::ready);
  epoll_event events[kMaxEvents];
  while (!stopping_) {
    int n = ::epoll_wait(epoll_.get(), events, kMaxEvents, wait_timeout(steady_clock::now()));
    if (n < 0 && errno != EINTR) {
      spdlog::critical("epoll_wait failed: {}", std::strerror(errno));
      return 1;
    }
    for (int i = 0; i < n; ++i) {
      const auto slot = static_cast<std::uint32_t>(events[i].data.u64);
      if (slot == kChannelSlot) {
        if (events[i].events & EPOLLOUT) flush_outbox();
        on_channel();
      } else if (slot == kSinkSlot) {
        // flushed below, once per pass
      } else if (Connection* c = lookup(events[i].data.u64)) {
        on_connection_event(*c, events[i].events);
      }
    }
    const SteadyTime now = steady_clock::now();
    expire_deadlines(now);
    check_holds(now);
    drain_step(now);
    flush_inbound();
    report_settled(now);
    events_.flush();
    if (handshakes_since_trim_ >= kTrimAfterHandshakes && now - last_trim_ >= kTrimInterval) {
      ::malloc_trim(0);
      handshakes_since_trim_ = 0;
      last_trim_ = now;
    }
  }
  close_all("server_shutdown");
  report_settled(steady_clock::now(), true);
  // Pushes handed back by the closes above: the master puts them in the offline queue.
  for (int tries = 0; tries < 2000 && !outbox_.empty(); ++tries) {
    flush_outbox();
    if (!outbox_.empty()) ::usleep(1000);
  }
  events_.flush_before_exit(std::chrono::seconds(1));
  // Whatever is still in memory goes to the FIFO or the spool before the process ends.
  for (int tries = 0; tries < 5000 && sink_.pending_bytes() > 0; ++tries) {
    sink_.flush();
    if (sink_.pending_bytes() > 0) ::usleep(1000);
  }
  if (sink_.pending_bytes() > 0) {
    spdlog::error("{} bytes of inbound records could not be placed before exit",
                  sink_.pending_bytes());
    return 1;
  }
  spdlog::info("stopped: {} frames accepted, every record placed in the FIFO or the spool",
               counters_.frames_in.load(std::memory_order_relaxed) - frames_in_at_start_);
  return 0;
}

}  // namespace

int run(WorkerSetup setup) noexcept {
  const config::Config& config = *setup.config;
  auto registry = DeviceRegistry::open(config.devices.sqlite, DeviceRegistry::Mode::read_write);
  if (!registry) {
    spdlog::critical("cannot open the device registry: {}", registry.error());
    return 1;
  }
  auto sink = InboundSink::open(InboundOptions{.fifo_path = config.fifo.inbound,
                                               .spool_dir = config.spool.dir,
                                               .memory_limit = config.spool.memory,
                                               .spool_limit = config.spool.max_size});
  if (!sink) {
    spdlog::critical("cannot open the inbound sink: {}", sink.error());
    return 1;
  }
  Fd epoll(::epoll_create1(EPOLL_CLOEXEC));
  if (!epoll) {
    spdlog::critical("epoll_create1 failed: {}", std::strerror(errno));
    return 1;
  }
  Worker worker(std::move(setup), std::move(*registry), std::move(*sink), std::move(epoll));
  return worker.run();
}

}  // namespace iotsocket::worker
