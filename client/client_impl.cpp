#include "client/client_impl.hpp"

#include <poll.h>

#include <algorithm>
#include <array>
#include <cstdio>

#include "client/login_hints.hpp"
#include "protocol/encoder.hpp"
#include "protocol/errors.hpp"

namespace iotsocket::client {
namespace {

using std::chrono::duration_cast;
using std::chrono::milliseconds;

int millis_between(SteadyTime from, SteadyTime to) {
  if (to <= from) return 0;
  const auto ms = duration_cast<milliseconds>(to - from).count() + 1;  // round up: no busy loop
  return static_cast<int>(std::min<milliseconds::rep>(ms, 60'000));
}

}  // namespace

Client::Impl::Impl(Options options, Trust trust, SslCtx ctx, protocol::DeviceId device)
    : options_(std::move(options)),
      trust_(std::move(trust)),
      ctx_(std::move(ctx)),
      device_(device),
      pacer_(options_.max_rate, std::max(1u, options_.max_rate / 3)),
      backoff_(options_.backoff_initial, options_.backoff_max, std::random_device{}()),
      random_(std::random_device{}()) {}

Client::Impl::~Impl() {
  if (link_) link_->goodbye();
}

void Client::Impl::log(LogLevel level, const std::string& message) const {
  if (options_.log) {
    options_.log(level, message);
    return;
  }
  if (level < LogLevel::warning) return;
  std::fprintf(stderr, "iotsocket-client: %s: %s\n", level == LogLevel::error ? "error" : "warning",
               message.c_str());
}

protocol::Time Client::Impl::wall_now() const {
  return protocol::to_time(options_.clock ? options_.clock() : std::chrono::system_clock::now());
}

// ---- the public operations ----

std::optional<Event> Client::Impl::take_event() {
  if (!pushes_.empty()) {
    Event event{std::move(pushes_.front()), std::nullopt};
    pushes_.pop_front();
    return event;
  }
  if (!errors_.empty()) {
    Event event{std::nullopt, std::move(errors_.front())};
    errors_.pop_front();
    return event;
  }
  if (fatal_) return Event{std::nullopt, fatal_};
  return std::nullopt;
}

std::optional<Error> Client::Impl::connect() {
  if (fatal_) return fatal_;
  const std::size_t earlier_errors = errors_.size();
  if (!link_) attempt();
  const SteadyTime deadline = steady_now() + 2 * options_.connect_timeout + options_.login_grace;
  while (link_ && login_ != Login::accepted && steady_now() < deadline) pump(deadline);
  if (errors_.size() > earlier_errors) {  // what this call ran into, not older news
    const auto first_new = errors_.begin() + static_cast<std::ptrdiff_t>(earlier_errors);
    Error error = std::move(*first_new);
    errors_.erase(first_new);
    return error;
  }
  if (fatal_) return fatal_;
  if (!online()) {
    return Error{ErrorCode::server_gone, "no login within connect_timeout + login_grace", false};
  }
  return std::nullopt;
}

std::optional<Error> Client::Impl::send(std::string_view payload) {
  if (fatal_) return fatal_;
  if (const auto problem = protocol::payload_error(payload)) {
    return Error{ErrorCode::bad_payload,
                 "payload of " + std::to_string(payload.size()) + " bytes refused (" +
                     std::string(protocol::name(*problem)) +
                     "): IOT/1.1 carries 5 to 62534 bytes once \"|#|\" is removed and the "
                     "ends are stripped",
                 false};
  }
  if (queued() >= options_.queue_limit) {
    return Error{ErrorCode::queue_full,
                 std::to_string(queued()) + " frames are waiting already (queue_limit)", false};
  }
  queue_.emplace_back(payload);
  if (online()) write_pending(steady_now());
  return std::nullopt;
}

Event Client::Impl::poll(Duration timeout) {
  const SteadyTime deadline = steady_now() + timeout;
  for (bool first = true;; first = false) {
    if (auto event = take_event()) return *event;
    const SteadyTime now = steady_now();
    if (!first && now >= deadline) return {};
    if (link_) {
      pump(deadline);
    } else if (now < next_attempt_at_) {
      if (now >= deadline) return {};
      ::poll(nullptr, 0, millis_between(now, std::min(deadline, next_attempt_at_)));
    } else {
      attempt();
    }
  }
}

void Client::Impl::close(Duration timeout) {
  if (fatal_) return;
  const SteadyTime deadline = steady_now() + timeout;
  // Connected (also while the login waits out its grace): write what is queued first.
  while (link_ && (!queue_.empty() || in_flight_) && steady_now() < deadline) pump(deadline);
  if (link_) end_link(std::max(deadline, steady_now() + milliseconds(100)));
  fatal_ = Error{ErrorCode::closed, "the client was closed", true};
}

Duration Client::Impl::wait_hint() const noexcept {
  if (!pushes_.empty() || !errors_.empty()) return Duration::zero();
  const SteadyTime now = steady_now();
  SteadyTime wake = now + std::chrono::hours(1);
  if (fatal_) return std::chrono::hours(1);
  if (!link_) {
    wake = std::max(now, next_attempt_at_);
  } else if (want_write_) {
    wake = now + milliseconds(10);  // the caller's loop does not wait for writability
  } else if (link_->has_buffered_input() || login_ == Login::writing) {
    wake = now;
  } else {
    wake = next_wakeup(wake, now);
  }
  return duration_cast<Duration>(wake - now) + (wake > now ? milliseconds(1) : milliseconds(0));
}

// ---- connecting ----

void Client::Impl::attempt() {
  const SteadyTime now = steady_now();
  auto link = Link::open(options_, trust_, ctx_.get());
  if (!link) {
    attempt_failed(link.error());
    return;
  }
  link_.emplace(std::move(*link));
  decoder_ = protocol::Decoder(protocol::Direction::from_server);
  login_ = Login::not_written;
  want_write_ = false;
  write_wants_read_ = false;
  if (trust_.insecure()) {
    log(LogLevel::warning, "connected to " + link_->peer() +
                               " WITHOUT authenticating it (insecure): anyone on the path can "
                               "read and change this traffic; server pin " + link_->server_pin());
  } else {
    log(LogLevel::info, "connected to " + link_->peer() + ", logging in as " +
                            protocol::to_string(device_));
  }
  // Each connection renews at a random moment of the last tenth of its allowed age.
  if (options_.max_connection_age.count() > 0) {
    const auto age = options_.max_connection_age;
    std::uniform_int_distribution<Duration::rep> early(0, age.count() / 10);
    renew_at_ = now + age - Duration{early(random_)};
  } else {
    renew_at_ = SteadyTime::max();
  }
  write_pending(now);
}

void Client::Impl::accept_login(SteadyTime now) {
  if (login_ != Login::waiting) return;
  login_ = Login::accepted;
  in_flight_.reset();  // the login's payload: delivered
  ++stats_.connects;
  failed_attempts_ = 0;
  refused_logins_ = 0;
  backoff_.reset();
  last_frame_at_ = now;
  log(LogLevel::info, "logged in to " + link_->peer() + " as " + protocol::to_string(device_));
}

// ---- one round of I/O ----

void Client::Impl::pump(SteadyTime deadline) {
  SteadyTime now = steady_now();
  if (login_ == Login::waiting && now >= login_written_at_ + options_.login_grace) {
    // A refusal that has arrived by now must not be mistaken for silence.
    if (input_waiting()) {
      read_available();
      if (!link_) return;
    }
    accept_login(now);
    write_pending(now);  // what waited for the login goes out now
    return;              // the caller may have waited for just this
  }
  if (login_ == Login::accepted && idle() && now >= renew_at_) {
    renew();
    return;
  }
  write_pending(now);
  if (!link_) return;

  const bool buffered = link_->has_buffered_input();
  pollfd p{link_->fd(), static_cast<short>(POLLIN | (want_write_ ? POLLOUT : 0)), 0};
  const int wait = buffered ? 0 : millis_between(now, next_wakeup(deadline, now));
  const int ready = ::poll(&p, 1, wait);
  if (buffered || (ready > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR)) != 0)) {
    write_wants_read_ = false;
    read_available();
  }
  if (link_ && ready > 0 && (p.revents & POLLOUT) != 0) want_write_ = false;
}

SteadyTime Client::Impl::next_wakeup(SteadyTime deadline, SteadyTime now) const {
  // A frame that is due may still be held back by the pacer (or the clock) until then.
  const SteadyTime can_write = std::max(now, write_retry_at_);
  SteadyTime wake = deadline;
  switch (login_) {
    case Login::not_written:
      wake = std::min(wake, can_write);
      break;
    case Login::writing:
      break;  // waits for writability
    case Login::waiting:
      wake = std::min(wake, login_written_at_ + options_.login_grace);
      break;
    case Login::accepted:
      // Renewal and keepalive act only between frames; while a frame is cut short by a
      // full socket, the wait is for the socket.
      if (idle()) {
        wake = std::min(wake, renew_at_);
        if (options_.keepalive.count() > 0) {
          wake = std::min(wake, std::max(last_frame_at_ + options_.keepalive, write_retry_at_));
        }
      }
      if ((!queue_.empty() || !out_.empty()) && !write_blocked()) wake = std::min(wake, can_write);
      break;
  }
  return wake;
}

// ---- writing ----

bool Client::Impl::encode(const std::string& payload, SteadyTime now) {
  if (const SteadyTime allowed = pacer_.next_allowed(now); allowed > now) {
    write_retry_at_ = allowed;
    return false;
  }
  // TIMEs may run ahead of the clock only a little: the server refuses one that is the
  // tolerance away. Beyond a third of it, frames wait for the clock.
  const protocol::Tick max_lead = duration_cast<protocol::Tick>(options_.time_tolerance) / 3;
  const protocol::Time wall = wall_now();
  const auto time = stamper_.next(wall, max_lead);
  if (!time) {
    // Frames came faster than one per 0.1 ms for a while, or the clock stepped back: a
    // TIME above the last one would be too far ahead. Wait until the clock catches up.
    const auto behind = duration_cast<milliseconds>(stamper_.last() - max_lead - wall);
    write_retry_at_ = now + std::max(milliseconds(1), behind + milliseconds(1));
    if (behind > milliseconds(100) && !clock_warned_) {
      clock_warned_ = true;
      log(LogLevel::warning, "the clock is " + std::to_string(behind.count()) +
                                 " ms behind the TIME of the last frame sent (it stepped back?); "
                                 "frames wait until it catches up");
    }
    return false;
  }
  clock_warned_ = false;
  out_.clear();
  out_written_ = 0;
  // The payload and the key were checked before they were queued; this cannot refuse them.
  (void)protocol::append_device_frame(out_, device_, options_.key, *time, payload);
  pacer_.sent(now);
  return !out_.empty();
}

// Prepares the frame due now, if any: the login, then (once the login is accepted) the
// queue in order, then a keepalive when the link has been quiet.
bool Client::Impl::next_frame(SteadyTime now) {
  if (!out_.empty()) return true;
  switch (login_) {
    case Login::not_written:
      // The first queued frame logs in; with none, the keepalive payload does.
      if (!encode(queue_.empty() ? options_.keepalive_payload : queue_.front(), now)) return false;
      in_flight_.reset();
      if (!queue_.empty()) {
        in_flight_ = std::move(queue_.front());
        queue_.pop_front();
      }
      login_ = Login::writing;
      return true;
    case Login::writing:
    case Login::waiting:
      return false;
    case Login::accepted:
      break;
  }
  if (!queue_.empty()) {
    if (!encode(queue_.front(), now)) return false;
    in_flight_ = std::move(queue_.front());
    queue_.pop_front();
    return true;
  }
  if (options_.keepalive.count() > 0 && now >= last_frame_at_ + options_.keepalive) {
    in_flight_.reset();
    return encode(options_.keepalive_payload, now);
  }
  return false;
}

void Client::Impl::frame_written(SteadyTime now) {
  out_.clear();
  out_written_ = 0;
  ++stats_.frames_sent;
  last_frame_at_ = now;
  if (login_ == Login::writing) {
    login_ = Login::waiting;
    login_written_at_ = now;
    // The login payload stays in in_flight_ until the login is accepted: a refused login
    // did not deliver it.
    return;
  }
  in_flight_.reset();
}

void Client::Impl::write_pending(SteadyTime now) {
  while (link_ && !write_blocked()) {
    if (out_.empty()) {
      // A server that has closed the connection would lose the frame without a word:
      // take in what it said first (its close, or pushes), one poll() per frame.
      if (input_waiting()) {
        read_available();
        if (!link_) return;
      }
      if (!next_frame(now)) return;
    }
    std::size_t wrote = 0;
    const Io io = link_->write(std::string_view(out_).substr(out_written_), wrote);
    if (io == Io::ok) {
      out_written_ += wrote;
      if (out_written_ == out_.size()) frame_written(now);
      continue;
    }
    if (io == Io::want_write || io == Io::want_read) {
      want_write_ = io == Io::want_write;
      write_wants_read_ = io == Io::want_read;
      return;
    }
    lose_connection(ErrorCode::server_gone, "writing to " + link_->peer() + ": " + link_->last_error());
    return;
  }
}

// ---- endings ----

void Client::Impl::report(Error error) {
  log(error.fatal ? LogLevel::error : LogLevel::warning,
      std::string(name(error.code)) + ": " + error.message);
  if (error.fatal) {
    fatal_ = std::move(error);
  } else {
    errors_.push_back(std::move(error));
  }
}

void Client::Impl::attempt_failed(Error error) {
  ++stats_.failed_attempts;
  if (!error.fatal) {
    const bool refused = error.code == ErrorCode::auth_refused;
    const unsigned count = refused ? ++refused_logins_ : ++failed_attempts_;
    const unsigned limit = refused ? options_.max_auth_failures : options_.max_attempts;
    if (!options_.reconnect || (limit != 0 && count >= limit)) {
      error.fatal = true;
      if (options_.reconnect) error.message += " (" + std::to_string(count) + " times in a row; giving up)";
    } else {
      const Duration wait = backoff_.next();
      next_attempt_at_ = steady_now() + wait;
      error.message += " (next attempt in " + std::to_string(wait.count()) + " ms)";
    }
  }
  report(std::move(error));
}

void Client::Impl::lose_connection(ErrorCode code, const std::string& why) {
  const Login login = login_;
  // A frame cut in the middle never reached the server whole: it goes out again first.
  // So does the login's payload when the login was refused.
  if (in_flight_ && (login != Login::accepted || out_written_ < out_.size())) {
    queue_.push_front(std::move(*in_flight_));
  }
  in_flight_.reset();
  out_.clear();
  out_written_ = 0;
  link_.reset();
  login_ = Login::not_written;
  want_write_ = false;
  write_wants_read_ = false;

  if (login == Login::waiting && code == ErrorCode::server_gone) {
    attempt_failed(Error{ErrorCode::auth_refused,
                         "the server closed the connection after the login frame (" + why +
                             "): wrong key, unknown or disabled device, the device is connected "
                             "elsewhere, or this clock is off",
                         false});
    log(LogLevel::info,
        refused_login_checklist(protocol::to_string(device_), server_clock_offset_,
                                duration_cast<protocol::Tick>(options_.time_tolerance)));
    return;
  }
  if (login != Login::accepted) {
    attempt_failed(Error{code, why, false});
    return;
  }
  // A session that worked ended: try again soon, after a short random wait.
  Error error{code, "connection lost: " + why, !options_.reconnect};
  if (options_.reconnect) {
    backoff_.reset();
    const Duration wait = backoff_.next();
    next_attempt_at_ = steady_now() + wait;
    error.message += " (reconnecting in " + std::to_string(wait.count()) + " ms)";
  }
  report(std::move(error));
}

void Client::Impl::renew() {
  log(LogLevel::info, "renewing the connection to " + link_->peer() +
                          " before the server's maximum connection age");
  // Wait for the server to close its side: a new login that overtook the old connection's
  // close would be refused as a duplicate.
  if (!end_link(steady_now() + std::chrono::seconds(1))) return;
  next_attempt_at_ = steady_now();
}

bool Client::Impl::end_link(SteadyTime deadline) {
  std::string late;
  link_->close_gracefully(deadline, late);
  decoder_.feed(late);
  take_frames();  // pushes that were on their way are still delivered
  if (!link_) return false;  // they broke the framing: lose_connection() did the rest
  link_.reset();
  login_ = Login::not_written;
  want_write_ = false;
  write_wants_read_ = false;
  return true;
}

}  // namespace iotsocket::client
