#include "worker/drain.hpp"

#include <algorithm>
#include <random>

namespace iotsocket::worker {

void Drain::begin(std::chrono::milliseconds period, SteadyTime now, std::vector<std::uint64_t> tags,
                  std::uint32_t seed) {
  if (!draining_) {
    draining_ = true;
    started_ = now;
    order_ = std::move(tags);
    std::minstd_rand random(seed);
    std::shuffle(order_.begin(), order_.end(), random);
  }
  period_ = period;
}

std::optional<SteadyTime> Drain::next_close() const noexcept {
  if (!draining_ || next_ >= order_.size()) return std::nullopt;
  return started_ + period_ * static_cast<std::int64_t>(next_) / static_cast<std::int64_t>(order_.size());
}

std::optional<std::uint64_t> Drain::next_due(SteadyTime now) noexcept {
  const auto due = next_close();
  if (!due || *due > now) return std::nullopt;
  return order_[next_++];
}

bool Drain::just_drained(std::size_t open_connections) noexcept {
  if (!draining_ || open_connections > 0 || said_drained_) return false;
  said_drained_ = true;
  return true;
}

}  // namespace iotsocket::worker
