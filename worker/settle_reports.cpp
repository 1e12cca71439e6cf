#include "worker/settle_reports.hpp"

#include <algorithm>
#include <span>

#include "common/channel.hpp"
#include "worker/master_link.hpp"

namespace iotsocket::worker {

void SettleReports::report(SteadyTime now, MasterLink& master, bool now_or_never) {
  if (settled_.empty()) return;
  if (!now_or_never && settled_.size() < channel::kSeqsPerMessage && now - last_report_ < kInterval) {
    return;
  }
  last_report_ = now;
  for (std::size_t at = 0; at < settled_.size(); at += channel::kSeqsPerMessage) {
    const std::size_t count = std::min(channel::kSeqsPerMessage, settled_.size() - at);
    master.send(channel::Message{.cmd = channel::Cmd::pushes_settled},
                channel::encode_settled(std::span(settled_).subspan(at, count)));
  }
  settled_.clear();
}

std::optional<SteadyTime> SettleReports::due() const noexcept {
  if (settled_.empty()) return std::nullopt;
  return last_report_ + kInterval;
}

}  // namespace iotsocket::worker
