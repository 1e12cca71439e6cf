// SettleReports: the numbers of the pushes this worker has written whole (or dropped) and
// not yet reported to the master. The master keeps a copy of each push until it is
// reported, so that a worker's death loses none; reporting costs one message per 10 ms at
// most under a stream of pushes, not one per loop pass. A crash can repeat what was
// written since the last report (at least once, never lost).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

#include "worker/deadlines.hpp"

namespace iotsocket::worker {

class MasterLink;

class SettleReports {
 public:
  static constexpr std::chrono::milliseconds kInterval{10};

  void add(std::uint64_t seq) { settled_.push_back(seq); }
  std::size_t waiting() const noexcept { return settled_.size(); }

  // Sends what waits (pushes_settled, channel::encode_settled, kSeqsPerMessage a message)
  // once kInterval has passed since the last report, or a message's worth waits, or
  // `now_or_never` (the worker is exiting).
  void report(SteadyTime now, MasterLink& master, bool now_or_never = false);
  // When the next report is due; nullopt when nothing waits.
  std::optional<SteadyTime> due() const noexcept;

 private:
  std::vector<std::uint64_t> settled_;
  SteadyTime last_report_{};
};

}  // namespace iotsocket::worker
