#include "bench/push_ledger.hpp"

namespace iotsocket::bench {

PushLedger::PushLedger(std::uint64_t total)
    : total_(total), bits_(std::make_unique<std::atomic<std::uint64_t>[]>((total + 63) / 64)) {}

Receipt PushLedger::take(std::uint64_t seq, std::optional<std::uint64_t>& device_high) noexcept {
  if (seq >= total_) return Receipt::unknown;
  const std::uint64_t bit = std::uint64_t{1} << (seq % 64);
  if ((bits_[seq / 64].fetch_or(bit, std::memory_order_relaxed) & bit) != 0) return Receipt::duplicate;
  const bool behind = device_high && seq < *device_high;
  if (!behind) device_high = seq;
  return behind ? Receipt::out_of_order : Receipt::fresh;
}

}  // namespace iotsocket::bench
