// When each connection must next be looked at (handshake, first frame, idle, max age), and
// why it closes when that time has come.
//
// DeadlineQueue is a min-heap with lazy deletion: O(log n) per event, never a scan of all
// connections. Each connection keeps the time of its live entry (`queued_at`); an entry
// whose time no longer matches is stale and dropped when it surfaces. Deadlines puts the
// worker's timeouts on it.
#pragma once

#include <chrono>
#include <cstdint>
#include <queue>
#include <string_view>
#include <vector>

#include "config/config.hpp"

namespace iotsocket::worker {

using SteadyTime = std::chrono::steady_clock::time_point;

struct DeadlineEntry {
  SteadyTime at;
  std::uint32_t slot;
  std::uint32_t generation;
  friend bool operator>(const DeadlineEntry& a, const DeadlineEntry& b) { return a.at > b.at; }
};

class DeadlineQueue {
 public:
  void push(SteadyTime at, std::uint32_t slot, std::uint32_t generation) {
    heap_.push(DeadlineEntry{at, slot, generation});
  }
  bool empty() const noexcept { return heap_.empty(); }
  const DeadlineEntry& top() const { return heap_.top(); }
  void pop() { heap_.pop(); }
  std::size_t size() const noexcept { return heap_.size(); }

  // Milliseconds until the earliest entry (rounded up), -1 when there is none: the
  // epoll_wait timeout.
  int timeout_ms(SteadyTime now) const noexcept {
    if (heap_.empty()) return -1;
    if (heap_.top().at <= now) return 0;
    auto ms = std::chrono::ceil<std::chrono::milliseconds>(heap_.top().at - now).count();
    return ms > 60'000 ? 60'000 : static_cast<int>(ms);
  }

 private:
  std::priority_queue<DeadlineEntry, std::vector<DeadlineEntry>, std::greater<>> heap_;
};

struct Connection;
class ConnectionTable;

class Deadlines {
 public:
  // `timeouts` is the worker's (a reload changes it in place).
  explicit Deadlines(const config::Timeouts& timeouts) noexcept : timeouts_(timeouts) {}

  // The connection's next deadline in its state (a paused connection is silent because of
  // us: only its age counts then).
  SteadyTime deadline_of(const Connection& c) const noexcept;
  // After the connection's state or last frame changed.
  void schedule(Connection& c);

  struct Due {
    Connection* connection = nullptr;  // nullptr: none is due
    std::string_view reason;           // the close reason
  };
  // The next connection whose deadline has passed, with why it closes. The caller closes
  // it before asking again.
  Due next_due(SteadyTime now, ConnectionTable& connections);

  int timeout_ms(SteadyTime now) const noexcept { return queue_.timeout_ms(now); }

 private:
  const config::Timeouts& timeouts_;
  DeadlineQueue queue_;
};

}  // namespace iotsocket::worker
