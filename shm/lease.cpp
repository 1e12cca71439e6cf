// A connection's lease on its device's entry: each call is one access to that entry, no
// lookup (design: lease.hpp).
#include "shm/lease.hpp"

#include "shm/layout.hpp"

namespace iotsocket::shm {

using namespace detail;

bool Lease::holds() const noexcept {
  return entry_ != nullptr && entry_->holder.load(std::memory_order_acquire) == word_;
}

bool Lease::accept(protocol::Time t, const ClockSkew& skew) noexcept {
  if (entry_ == nullptr) return false;
  const bool ours = entry_->holder.load(std::memory_order_acquire) == word_;
  raise(entry_->replay_mark, ticks(t));
  entry_->skew.store(pack_skew(skew), std::memory_order_relaxed);
  return ours;
}

void Lease::raise_replay_mark(protocol::Time t) noexcept {
  if (entry_ != nullptr) raise(entry_->replay_mark, ticks(t));
}

void Lease::raise_push_mark(protocol::Time t) noexcept {
  if (entry_ != nullptr) raise(entry_->push_mark, ticks(t));
}

bool Lease::release() noexcept {
  if (entry_ == nullptr) return false;
  std::uint64_t expected = word_;
  const bool released = entry_->holder.compare_exchange_strong(
      expected, 0, std::memory_order_acq_rel, std::memory_order_relaxed);
  *this = Lease{};
  return released;
}

}  // namespace iotsocket::shm
