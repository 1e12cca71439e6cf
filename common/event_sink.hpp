// EventSink: one process's writer of the lifecycle events FIFO (`fifo.events`), the lines
// that tell the backend what happened to its devices and its pushes:
//
//   connected ID PEER        a device logged in (PEER as in the log: 203.0.113.7:51234)
//   disconnected ID REASON   a logged-in device's connection closed (the log's reason code)
//   push_queued ID           a push went into the device's offline queue
//   push_delivered ID        a push frame was written whole to the device's socket
//   push_expired ID          a push will not be delivered (expired, evicted, not kept)
//
// The master and every worker each own one. Events are advisory: nothing here blocks, and
// no device waits for the backend to read them. A line is written with one write() of
// whole lines, at most PIPE_BUF bytes, so the lines of several processes never interleave.
// While the FIFO has no reader (open() says ENXIO; looked for again at most once per
// reopen_delay) or the reader is slow (EAGAIN), lines wait in memory, up to memory_limit
// bytes; beyond it the oldest are dropped and counted, with one warning per minute naming
// the count. A reader that closes loses what it had not read; the next one gets the lines
// from then on (and those waiting in memory).
//
// Owns the FIFO's write descriptor. Single-threaded; must not cross fork() in use (a child
// resets its parent's sink). An EventSink made from an empty path is off: every call is a
// no-op.
//
// Use from an event loop: call the event functions anywhere; flush() once per loop pass
// (the lines of one pass go out in a few writes) and before every message to another
// process (so that the lines of two processes are in the order they happened, as long as
// the backend keeps up: a worker's `connected` is in the FIFO before the master, told of
// the login, writes a `push_expired`); wake up after retry_in() when it says so.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/fd.hpp"
#include "common/net.hpp"
#include "protocol/device_id.hpp"

namespace iotsocket {

struct EventSinkOptions {
  std::string path;                               // fifo.events; empty: off
  std::size_t memory_limit = 1U << 20;            // bytes of lines waiting in memory
  std::chrono::milliseconds reopen_delay{1000};   // between looks for a reader
  std::chrono::milliseconds blocked_retry{50};    // between writes to a full pipe
  std::chrono::milliseconds warn_interval{60000}; // between warnings about dropped lines
};

class EventSink {
 public:
  using Clock = std::chrono::steady_clock;

  EventSink() = default;  // off
  // Looks for a reader at once, so that one already there gets the first events.
  explicit EventSink(EventSinkOptions options);
  EventSink(EventSink&&) noexcept = default;
  EventSink& operator=(EventSink&&) noexcept = default;

  bool enabled() const noexcept { return !options_.path.empty(); }

  void connected(protocol::DeviceId id, const PeerAddress& peer) noexcept;
  void disconnected(protocol::DeviceId id, std::string_view reason) noexcept;
  void push_queued(protocol::DeviceId id) noexcept;
  void push_delivered(protocol::DeviceId id) noexcept;
  void push_expired(protocol::DeviceId id) noexcept;

  // Writes what waits, as far as the pipe takes it; opens the FIFO first when it is time
  // to look for a reader again. Never waits.
  void flush() noexcept;
  // Call flush() again after this long; nullopt: nothing waits.
  std::optional<std::chrono::milliseconds> retry_in() const noexcept;
  // At exit: flushes for at most `budget` while a reader takes lines; logs what is left.
  void flush_before_exit(std::chrono::milliseconds budget) noexcept;

  std::size_t pending_bytes() const noexcept { return buffer_.size() - head_; }
  std::uint64_t dropped() const noexcept { return dropped_total_; }
  bool has_reader() const noexcept { return fifo_.valid(); }

 private:
  void emit(std::string_view kind, protocol::DeviceId id, std::string_view detail) noexcept;
  void make_room(std::size_t bytes) noexcept;
  void write_pending(Clock::time_point now) noexcept;
  void try_open(Clock::time_point now) noexcept;
  void reader_gone() noexcept;
  void warn_dropped(Clock::time_point now) noexcept;

  EventSinkOptions options_;
  Fd fifo_;
  Clock::time_point reopen_at_{};
  Clock::time_point blocked_until_{};  // the pipe was full: no write before this
  std::string buffer_;     // whole lines; those before head_ are written
  std::size_t head_ = 0;
  std::uint64_t dropped_total_ = 0;
  std::uint64_t dropped_unreported_ = 0;
  Clock::time_point next_warning_{};
  bool said_no_reader_ = false;
  bool said_open_failed_ = false;
};

}  // namespace iotsocket
