#include "common/event_sink.hpp"

#include <limits.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <thread>
#include <utility>

#include <spdlog/spdlog.h>

#include "common/fifo_writer.hpp"

namespace iotsocket {
namespace {

// The pipe holds this much when the kernel allows it (it may not: then its default).
// A detail (peer, reason) is far shorter; the cap keeps every line below PIPE_BUF.
constexpr std::size_t kMaxDetail = 200;
// Written lines are cut off the front of the buffer once they are this many bytes.
constexpr std::size_t kCompactAfter = 64 * 1024;

}  // namespace

EventSink::EventSink(EventSinkOptions options) : options_(std::move(options)) {
  if (enabled()) try_open(Clock::now());
}

void EventSink::connected(protocol::DeviceId id, const PeerAddress& peer) noexcept {
  if (enabled()) emit("connected", id, peer.to_string());
}
void EventSink::disconnected(protocol::DeviceId id, std::string_view reason) noexcept {
  emit("disconnected", id, reason);
}
void EventSink::push_queued(protocol::DeviceId id) noexcept { emit("push_queued", id, {}); }
void EventSink::push_delivered(protocol::DeviceId id) noexcept { emit("push_delivered", id, {}); }
void EventSink::push_expired(protocol::DeviceId id) noexcept { emit("push_expired", id, {}); }

// Appends "KIND ID[ DETAIL]\n" behind the lines that wait; flush() writes it.
void EventSink::emit(std::string_view kind, protocol::DeviceId id, std::string_view detail) noexcept {
  if (!enabled()) return;
  const std::string id_text = protocol::to_string(id);
  detail = detail.substr(0, kMaxDetail);
  make_room(kind.size() + 1 + id_text.size() + (detail.empty() ? 0 : 1 + detail.size()) + 1);
  buffer_.append(kind).append(" ").append(id_text);
  if (!detail.empty()) buffer_.append(" ").append(detail);
  buffer_.push_back('\n');
}

// Drops the oldest waiting lines until `bytes` more fit: a backend that reads again wants
// what happens now more than what happened long ago.
void EventSink::make_room(std::size_t bytes) noexcept {
  while (head_ < buffer_.size() && pending_bytes() + bytes > options_.memory_limit) {
    const auto end = buffer_.find('\n', head_);
    head_ = end == std::string::npos ? buffer_.size() : end + 1;
    ++dropped_total_;
    ++dropped_unreported_;
  }
  if (head_ == buffer_.size()) {
    buffer_.clear();
    head_ = 0;
  }
}

void EventSink::flush() noexcept {
  if (pending_bytes() == 0 && dropped_unreported_ == 0) return;  // the common case, cheap
  const auto now = Clock::now();
  if (dropped_unreported_ > 0 && now >= next_warning_) warn_dropped(now);
  if (!fifo_.valid() && pending_bytes() > 0 && now >= reopen_at_) try_open(now);
  // A full pipe is tried again after blocked_retry, not on every call: flush() runs on
  // every loop pass and before every message to another process.
  if (fifo_.valid() && now < blocked_until_) return;
  write_pending(now);
}

void EventSink::write_pending(Clock::time_point now) noexcept {
  while (fifo_.valid() && pending_bytes() > 0) {
    // Whole lines, at most PIPE_BUF bytes: the kernel writes them all or nothing, so no
    // other process's line lands in the middle of one of ours.
    std::size_t len = std::min<std::size_t>(pending_bytes(), PIPE_BUF);
    if (len < pending_bytes()) len = buffer_.rfind('\n', head_ + len - 1) + 1 - head_;
    const ssize_t n = ::write(fifo_.get(), buffer_.data() + head_, len);
    if (n > 0) {
      head_ += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {  // the reader is slow: retry after blocked_retry
      blocked_until_ = now + options_.blocked_retry;
      break;
    }
    reader_gone();
  }
  if (head_ == buffer_.size()) {
    buffer_.clear();
    head_ = 0;
  } else if (head_ >= kCompactAfter && head_ * 2 >= buffer_.size()) {
    buffer_.erase(0, head_);
    head_ = 0;
  }
}

std::optional<std::chrono::milliseconds> EventSink::retry_in() const noexcept {
  if (!enabled() || pending_bytes() == 0) return std::nullopt;
  if (fifo_.valid()) return options_.blocked_retry;
  const auto left = std::chrono::ceil<std::chrono::milliseconds>(reopen_at_ - Clock::now());
  return std::max(left, std::chrono::milliseconds(0));
}

void EventSink::flush_before_exit(std::chrono::milliseconds budget) noexcept {
  const auto deadline = Clock::now() + budget;
  flush();
  while (pending_bytes() > 0 && fifo_.valid() && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    flush();
  }
  if (pending_bytes() > 0) {
    spdlog::warn("events FIFO {}: {} bytes of events not written at exit ({})", options_.path,
                 pending_bytes(), fifo_.valid() ? "the reader is slow" : "no reader");
  }
}

// No reader (ENXIO) is normal: the backend has not opened it yet.
void EventSink::try_open(Clock::time_point now) noexcept {
  reopen_at_ = now + options_.reopen_delay;
  auto opened = open_fifo_writer(options_.path);
  if (!opened && opened.error() == ENOTSUP) {
    if (!std::exchange(said_open_failed_, true)) {
      spdlog::error("events FIFO {} is not a FIFO; no events are written", options_.path);
    }
    return;
  }
  if (!opened && opened.error() == ENXIO) {
    if (!std::exchange(said_no_reader_, true)) {
      spdlog::info("events FIFO {} has no reader; events wait in memory (up to {} KiB) until "
                   "one opens it", options_.path, options_.memory_limit / 1024);
    }
    return;
  }
  if (!opened) {
    if (!std::exchange(said_open_failed_, true)) {
      spdlog::error("open of events FIFO {} failed: {}; retrying every {} ms", options_.path,
                    std::strerror(opened.error()), options_.reopen_delay.count());
    }
    return;
  }
  fifo_ = std::move(*opened);
  said_no_reader_ = false;
  said_open_failed_ = false;
}

// EPIPE: the reader closed (what it had not read went with the pipe). Anything else is as
// bad for this descriptor; either way the next reader gets a fresh open.
void EventSink::reader_gone() noexcept {
  if (errno != EPIPE) {
    spdlog::warn("write to events FIFO {} failed: {}", options_.path, std::strerror(errno));
  }
  fifo_.reset();
  try_open(Clock::now());
}

void EventSink::warn_dropped(Clock::time_point now) noexcept {
  spdlog::warn("events FIFO {}: {} events dropped, the oldest first ({}; at most {} KiB wait "
               "in memory)",
               options_.path, dropped_unreported_,
               fifo_.valid() ? "the reader is slow" : "no reader", options_.memory_limit / 1024);
  dropped_unreported_ = 0;
  next_warning_ = now + options_.warn_interval;
}

}  // namespace iotsocket
