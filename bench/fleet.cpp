#include "bench/fleet.hpp"

#include <netinet/in.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include <spdlog/spdlog.h>

#include "bench/payload.hpp"
#include "bench/push_plan.hpp"
#include "protocol/encoder.hpp"

namespace iotsocket::bench {
namespace {

// A frame is built only while the device's unwritten bytes stay below this: a server
// that stops reading backs the bench up instead of growing its memory.
constexpr std::size_t kMaxUnwritten = 64 * 1024;
// TIMEs run ahead of the clock only when frames come faster than one per 0.1 ms; the
// server refuses a TIME 3 s or more away from its clock.
constexpr protocol::Tick kMaxTimeLead = std::chrono::seconds(1);
// With no --connect-rate, connections start in batches so that events still get served.
constexpr std::uint64_t kConnectBatch = 256;
constexpr std::uint32_t kEvents = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;

std::string errno_text(const char* op, int err) {
  return std::string(op) + ": " + std::strerror(err);
}

std::uint64_t steady_ns(Clock::time_point t) {
  return static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count());
}

}  // namespace

Fleet::Fleet(const FleetSetup& setup, Epoll& epoll)
    : options_(*setup.options), setup_(setup), epoll_(epoll), devices_(setup.count),
      unsettled_(setup.count) {
  if (options_.hold) {
    frame_limit_ = options_.keepalive ? std::nullopt : std::optional<std::uint64_t>(1);
    if (options_.keepalive) frame_period_ = seconds(*options_.keepalive);
  } else {
    frame_limit_ = frames_per_device(options_);
    if (options_.rate > 0) frame_period_ = seconds(1.0 / options_.rate);
  }
}

double Fleet::since_start(Clock::time_point t) const {
  return std::chrono::duration<double>(t - setup_.start).count();
}

Clock::time_point Fleet::connect_due(std::uint64_t index) const {
  if (setup_.connect_rate <= 0) return setup_.start;
  return setup_.start + seconds(static_cast<double>(index) / setup_.connect_rate);
}

void Fleet::tick(Clock::time_point now) {
  start_due_connects(now);
  expire_handshakes(now);
  send_due_frames(now);
  if (!settled_at_ && settled()) settled_at_ = now;
  const bool pushes_over = setup_.ledger == nullptr || push_phase_over_;
  if (!sending_done_at_ && settled() && sending_ == 0 && pushes_over) sending_done_at_ = now;
}

std::vector<protocol::DeviceId> Fleet::logged_in_ids() const {
  std::vector<protocol::DeviceId> ids;
  for (std::uint64_t i = 0; i < devices_.size(); ++i) {
    const Device& d = devices_[i];
    if ((d.phase == Phase::up || d.phase == Phase::done) && d.logged_in) {
      ids.push_back(protocol::DeviceId{options_.first_id + setup_.first_index + i});
    }
  }
  return ids;
}

std::optional<Clock::time_point> Fleet::next_wakeup(Clock::time_point now) const {
  std::optional<Clock::time_point> t;
  const auto consider = [&t](Clock::time_point c) {
    if (!t || c < *t) t = c;
  };
  // A connect still due is work left by the batch limit: wake at once.
  if (next_connect_ < devices_.size()) consider(connect_due(next_connect_));
  if (!timers_.empty()) consider(timers_.top().at);
  if (!handshake_deadlines_.empty()) consider(handshake_deadlines_.front().at);
  // The ends of the hold and of the linger only matter ahead: once past, the loop may be
  // waiting for something else (the inbound records, the other loops) and must not spin.
  const auto consider_ahead = [&](Clock::time_point c) {
    if (c > now) consider(c);
  };
  if (settled_at_ && options_.hold) consider_ahead(*settled_at_ + seconds(*options_.hold));
  if (sending_done_at_) consider_ahead(*sending_done_at_ + seconds(options_.linger));
  return t;
}

bool Fleet::sending_done(Clock::time_point now) const {
  if (options_.hold) return settled_at_ && now >= *settled_at_ + seconds(*options_.hold);
  return sending_done_at_.has_value();
}

bool Fleet::finished(Clock::time_point now) const {
  if (options_.hold) return sending_done(now);
  if (sending_done_at_ && up_now_ == 0) return true;  // no connection left to watch
  return sending_done_at_ && now >= *sending_done_at_ + seconds(options_.linger);
}

void Fleet::start_due_connects(Clock::time_point now) {
  const bool limited = setup_.connect_rate > 0;
  for (std::uint64_t batch = 0; next_connect_ < devices_.size(); ++batch) {
    if (limited ? connect_due(next_connect_) > now : batch == kConnectBatch) break;
    start_connect(next_connect_++, now);
  }
}

void Fleet::expire_handshakes(Clock::time_point now) {
  while (!handshake_deadlines_.empty() && handshake_deadlines_.front().at <= now) {
    const std::uint64_t index = handshake_deadlines_.front().index;
    handshake_deadlines_.pop_front();
    const Phase p = devices_[index].phase;
    if (p == Phase::connecting || p == Phase::handshaking) {
      fail(index, Failure::timeout,
           p == Phase::connecting ? "connect() not done in time" : "TLS handshake not done in time");
    }
  }
}

void Fleet::start_connect(std::uint64_t index, Clock::time_point now) {
  Device& d = devices_[index];
  d.phase = Phase::connecting;
  d.started = now;
  ++stats_.attempted;
  // A server that never answers the ClientHello would otherwise hold the run to --duration.
  handshake_deadlines_.push_back(Timer{now + seconds(options_.handshake_timeout), index});
  Fd s(::socket(setup_.target.family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!s) return fail(index, Failure::connect_error, errno_text("socket()", errno));
  if (!setup_.sources.empty()) {
    // The port is picked at connect(), per (source, destination) pair, not at bind().
    const int one = 1;
    ::setsockopt(s.get(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    sockaddr_in src{};
    src.sin_family = AF_INET;
    src.sin_addr.s_addr = htonl(setup_.sources.at(setup_.first_index + index));
    if (::bind(s.get(), reinterpret_cast<const sockaddr*>(&src), sizeof src) != 0) {
      return fail(index, Failure::connect_error,
                  errno_text("bind()", errno) + " (" + format_ipv4(ntohl(src.sin_addr.s_addr)) + ")");
    }
  }
  const int rc = ::connect(s.get(), reinterpret_cast<const sockaddr*>(&setup_.target.addr),
                           setup_.target.len);
  const int err = errno;
  if (rc != 0 && err != EINPROGRESS) {
    return fail(index, err == ECONNREFUSED ? Failure::connect_refused : Failure::connect_error,
                errno_text("connect()", err));
  }
  auto stream = Stream::make(std::move(s), setup_.tls);
  if (!stream) return fail(index, Failure::tls_failed, stream.error());
  d.stream.emplace(std::move(*stream));
  if (const int e = epoll_.add(d.stream->fd(), kEvents, index); e != 0) {
    return fail(index, Failure::connect_error, errno_text("epoll_ctl()", e));
  }
  // Edge-triggered: the ADD reports the socket's current state, so nothing is missed.
}

void Fleet::on_event(std::uint64_t index, std::uint32_t events, Clock::time_point now) {
  if (index >= devices_.size()) return;
  Device& d = devices_[index];
  if (d.phase == Phase::connecting && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) != 0) {
    on_connected(index, now);
  } else if (d.phase == Phase::handshaking) {
    advance_handshake(index, now);
  } else if (d.phase == Phase::up || d.phase == Phase::done) {
    pump(index, now);
  }
}

void Fleet::on_connected(std::uint64_t index, Clock::time_point now) {
  int err = 0;
  socklen_t len = sizeof err;
  if (::getsockopt(devices_[index].stream->fd(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
    err = errno;
  }
  if (err != 0) {
    return fail(index, err == ECONNREFUSED ? Failure::connect_refused : Failure::connect_error,
                errno_text("connect()", err));
  }
  devices_[index].phase = Phase::handshaking;
  advance_handshake(index, now);
}

void Fleet::advance_handshake(std::uint64_t index, Clock::time_point now) {
  Device& d = devices_[index];
  switch (d.stream->handshake()) {
    case Io::ok: return on_up(index, now);
    case Io::want_read:
    case Io::want_write: return;
    case Io::closed:
      return fail(index, Failure::tls_failed, "the server closed during the handshake");
    case Io::error: return fail(index, Failure::tls_failed, d.stream->last_error());
  }
}

void Fleet::on_up(std::uint64_t index, Clock::time_point now) {
  Device& d = devices_[index];
  d.phase = Phase::up;
  d.sending = true;
  --unsettled_;
  ++sending_;
  ++up_now_;
  ++logins_pending_;
  ++stats_.up;
  stats_.handshake_us.push_back(static_cast<std::uint64_t>(
      std::chrono::duration_cast<std::chrono::microseconds>(now - d.started).count()));
  queue_frame(index);  // the login frame
  schedule_next_frame(index, now);
  pump(index, now);
}

void Fleet::schedule_next_frame(std::uint64_t index, Clock::time_point from) {
  Device& d = devices_[index];
  if (!frame_period_ || (frame_limit_ && d.frames_built >= *frame_limit_)) return;
  d.next_frame = from + *frame_period_;
  timers_.push(Timer{d.next_frame, index});
}

void Fleet::send_due_frames(Clock::time_point now) {
  while (!timers_.empty() && timers_.top().at <= now) {
    const Timer t = timers_.top();
    timers_.pop();
    Device& d = devices_[t.index];
    if (d.phase != Phase::up || d.next_frame != t.at) continue;  // closed since
    queue_frame(t.index);
    // Keep the nominal rate, but do not burst to catch up after a stall: the server's
    // flood limit would close the connection.
    schedule_next_frame(t.index, std::max(t.at, now - *frame_period_));
    pump(t.index, now);
  }
}

void Fleet::queue_frame(std::uint64_t index) {
  Device& d = devices_[index];
  const auto time = d.stamper.next(protocol::to_time(std::chrono::system_clock::now()), kMaxTimeLead);
  if (!time || d.out.size() - d.out_begin >= kMaxUnwritten) {
    ++stats_.frames_skipped;
    ++d.frames_built;  // a skipped frame still uses up its slot of --frames
    return;
  }
  ++d.frames_built;
  payload_ = make_payload(d.frames_built, options_.payload_bytes);
  const protocol::DeviceId id{options_.first_id + setup_.first_index + index};
  if (const auto e = protocol::append_device_frame(d.out, id, options_.key, *time, payload_)) {
    // The options were checked at startup, so the encoder cannot refuse: a broken invariant.
    spdlog::critical("append_device_frame() refused a frame: {}", static_cast<int>(*e));
    std::abort();
  }
  ++d.frames_in_out;
}

void Fleet::pump(std::uint64_t index, Clock::time_point now) {
  Device& d = devices_[index];
  if (!read_all(d)) {
    return fail(index, d.logged_in ? Failure::closed_after_login : Failure::closed_before_login,
                d.stream->last_error());
  }
  if (!flush(d, now)) {
    return fail(index, d.logged_in ? Failure::closed_after_login : Failure::closed_before_login,
                d.stream->last_error());
  }
  check_done_sending(d);
}

bool Fleet::read_all(Device& d) {
  std::array<char, 16384> buf;
  for (;;) {
    std::size_t n = 0;
    switch (d.stream->read(buf.data(), buf.size(), n)) {
      case Io::ok: break;
      case Io::want_read:
      case Io::want_write: return true;
      case Io::closed:
      case Io::error: return false;
    }
    if (d.pushes.failed()) continue;
    // One clock reading per read: the frames in it arrived together.
    const Clock::time_point now = setup_.ledger != nullptr ? Clock::now() : Clock::time_point{};
    d.pushes.feed(std::string_view(buf.data(), n));
    for (auto f = d.pushes.next(); f.status != protocol::DecodeStatus::need_more; f = d.pushes.next()) {
      if (f.status == protocol::DecodeStatus::failed) {
        ++stats_.bad_pushes;
        break;
      }
      ++stats_.pushes;
      if (setup_.ledger != nullptr) book_push(d, f.frame.body, now);
    }
  }
}

void Fleet::book_push(Device& d, std::string_view body, Clock::time_point now) {
  const auto stamp = parse_push_payload(body);
  // A push written before this run started (an offline push of an earlier run, delivered
  // at login) is not this run's, whatever its sequence number.
  if (!stamp || stamp->sent_ns < steady_ns(setup_.start)) {
    ++stats_.push_foreign;
    return;
  }
  switch (setup_.ledger->take(stamp->seq, d.push_high)) {
    case Receipt::unknown: ++stats_.push_foreign; return;
    case Receipt::duplicate: ++stats_.push_duplicates; return;
    case Receipt::out_of_order: ++stats_.push_out_of_order; break;
    case Receipt::fresh: ++stats_.push_fresh; break;
  }
  const std::uint64_t now_ns = steady_ns(now);
  stats_.push_latency_us.push_back(now_ns > stamp->sent_ns ? (now_ns - stamp->sent_ns) / 1000 : 0);
  stats_.last_push_s = since_start(now);
}

bool Fleet::flush(Device& d, Clock::time_point now) {
  while (d.out_begin < d.out.size()) {
    std::size_t n = 0;
    const Io io = d.stream->write(std::string_view(d.out).substr(d.out_begin), n);
    if (io == Io::want_read || io == Io::want_write) return true;
    if (io != Io::ok) return false;
    d.out_begin += n;
  }
  d.out.clear();
  d.out_begin = 0;
  if (d.frames_in_out > 0) {
    stats_.frames_sent += d.frames_in_out;
    d.frames_in_out = 0;
    if (!d.logged_in) --logins_pending_;
    d.logged_in = true;
    const double t = since_start(now);
    if (!stats_.first_send_s) stats_.first_send_s = t;
    stats_.last_send_s = t;
  }
  return true;
}

void Fleet::check_done_sending(Device& d) {
  if (!d.sending || !frame_limit_ || d.frames_built < *frame_limit_ || d.out_begin < d.out.size()) {
    return;
  }
  d.sending = false;
  d.phase = Phase::done;
  --sending_;
}

void Fleet::fail(std::uint64_t index, Failure why, const std::string& detail) {
  Device& d = devices_[index];
  if (d.phase == Phase::waiting || d.phase == Phase::connecting || d.phase == Phase::handshaking) {
    --unsettled_;
  }
  if (d.phase == Phase::up || d.phase == Phase::done) {
    --up_now_;
    if (!d.logged_in) --logins_pending_;
  }
  if (d.sending) --sending_;
  d.sending = false;
  d.phase = Phase::failed;
  d.stream.reset();  // closes the socket, which leaves the epoll set
  d.out = std::string();
  ++stats_[why];
  auto& logged = logged_[static_cast<std::size_t>(why)];
  if (!logged) {
    logged = true;
    spdlog::warn("device {}: {} ({}); later ones are only counted", options_.first_id + setup_.first_index + index,
                 name(why), detail.empty() ? "no detail" : detail);
  }
}

FleetStats Fleet::close_all() {
  for (std::uint64_t i = 0; i < devices_.size(); ++i) {
    Device& d = devices_[i];
    switch (d.phase) {
      case Phase::waiting: ++stats_.not_started; break;
      case Phase::connecting:
      case Phase::handshaking: fail(i, Failure::timeout, "not up when the run ended"); break;
      case Phase::up:
      case Phase::done:
        d.stream->shutdown();
        d.stream.reset();
        break;
      case Phase::failed: break;
    }
  }
  return std::move(stats_);
}

}  // namespace iotsocket::bench
