// DeadlineQueue: when each connection must next be looked at (handshake, first frame, idle,
// max age). A min-heap with lazy deletion: O(log n) per event, never a scan of all
// connections. Each connection keeps the time of its live entry (`queued_at`); an entry whose
// time no longer matches is stale and dropped when it surfaces.
#pragma once

#include <chrono>
#include <cstdint>
#include <queue>
#include <vector>

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

}  // namespace iotsocket::worker
