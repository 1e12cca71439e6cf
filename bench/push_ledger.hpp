// Which of the run's pushes arrived: one bit per sequence number, shared by all loops (a
// push goes to one device, but the loops must not trust that), and the per-device order
// rule. Thread-safe; the bits are atomic.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>

namespace iotsocket::bench {

enum class Receipt : std::uint8_t {
  fresh,         // first arrival of this sequence number, in order for its device
  out_of_order,  // first arrival, but lower than one the device already received
  duplicate,     // this sequence number arrived before
  unknown,       // not a sequence number of this run (>= --pushes)
};

class PushLedger {
 public:
  explicit PushLedger(std::uint64_t total);

  // Books the arrival of `seq` at a device whose highest sequence number so far is
  // `device_high` (updated here; nothing = none yet).
  Receipt take(std::uint64_t seq, std::optional<std::uint64_t>& device_high) noexcept;

  std::uint64_t total() const noexcept { return total_; }

 private:
  std::uint64_t total_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> bits_;
};

}  // namespace iotsocket::bench
