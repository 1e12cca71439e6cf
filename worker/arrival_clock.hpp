// When did the bytes a worker reads now reach this host? Not before the last moment the
// worker knew the connection had nothing unread. The time check measures a frame against
// that interval (protocol::Arrival), so that a frame which waited in the socket while the
// worker was not reading (paused by the inbound sink's back-pressure, or behind a pass
// full of handshakes) is not refused as stale for the server's own delay.
//
// It costs no system call: epoll is level-triggered, so a connection watched for EPOLLIN
// that a wait did not report had nothing unread when that wait returned, provided the wait
// returned every ready descriptor (fewer than maxevents). A connection reported pass after
// pass (one TLS record is read per pass) keeps the bound of the first pass of the streak,
// until the worker sees its socket empty (caught_up(): one FIONREAD, only for a connection
// whose bound is over a second old), so that neither a long backlog nor a long pause leaves
// the bound, and with it the flood limit's clock, far behind.
#pragma once

#include <cstdint>
#include <limits>

#include "protocol/time.hpp"

namespace iotsocket::worker {

// A connection's part: the pass it was last read in, and the bound for what is unread.
struct ArrivalMark {
  static constexpr std::uint64_t kNotWatched = std::numeric_limits<std::uint64_t>::max();

  // Watched for EPOLLIN from now on (a new connection: nothing can be unread before it).
  void start(protocol::Time now) noexcept {
    unread_since = now;
    read_pass = kNotWatched;
  }
  // EPOLLIN is off (paused, or TLS must write first): a pass that does not report the
  // connection proves nothing until it is read again.
  void not_watched() noexcept { read_pass = kNotWatched; }
  // The socket was seen empty at `now` (and nothing is buffered above it): whatever is read
  // later came after it. Ends a streak that would otherwise keep an old bound.
  void caught_up(protocol::Time now) noexcept {
    if (unread_since < now) unread_since = now;
  }

  std::uint64_t read_pass = kNotWatched;
  protocol::Time unread_since{};
};

class ArrivalClock {
 public:
  // After each epoll_wait: `saw_every_ready` when it returned fewer than maxevents.
  void pass_began(bool saw_every_ready, protocol::Time now) noexcept {
    if (previous_saw_all_) {
      empty_pass_ = pass_;
      empty_at_ = pass_at_;
    }
    ++pass_;
    pass_at_ = now;
    previous_saw_all_ = saw_every_ready;
  }

  // The interval in which what is read from the connection now arrived.
  protocol::Arrival reading(ArrivalMark& mark, protocol::Time now) noexcept {
    const bool missed_since_read = mark.read_pass != ArrivalMark::kNotWatched && empty_pass_ > mark.read_pass;
    if (missed_since_read && empty_at_ > mark.unread_since) mark.unread_since = empty_at_;
    mark.read_pass = pass_;
    return {.earliest = mark.unread_since < now ? mark.unread_since : now, .latest = now};
  }

 private:
  std::uint64_t pass_ = 0;
  protocol::Time pass_at_{};
  bool previous_saw_all_ = false;
  std::uint64_t empty_pass_ = 0;  // the latest earlier pass whose wait saw every ready one
  protocol::Time empty_at_{};     // when that wait returned
};

}  // namespace iotsocket::worker
