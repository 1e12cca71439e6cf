#include "master/in_flight.hpp"

#include <algorithm>

namespace iotsocket::master {
namespace {

// Compaction when the ordered part holds more than this many entries per unsettled one
// (plus a floor, so that small numbers never compact).
constexpr std::size_t kSparseFactor = 4;
constexpr std::size_t kSparseFloor = 4096;

}  // namespace

std::pair<const channel::Message&, std::string_view> InFlightPushes::add(channel::Message m,
                                                                         std::string payload) {
  compact_if_sparse();  // before, so that the new entry is ordered_.back()
  m.seq = next_seq_++;
  if (ordered_.empty()) first_seq_ = m.seq;
  ordered_.push_back(Entry{m, std::move(payload), false});
  ++ordered_live_;
  const Entry& kept = ordered_.back();
  return {kept.message, kept.payload};
}

void InFlightPushes::settle(std::uint64_t seq) {
  if (seq >= first_seq_ && seq - first_seq_ < ordered_.size()) {
    Entry& e = ordered_[seq - first_seq_];
    if (e.settled) return;
    e.settled = true;
    std::string().swap(e.payload);  // give the memory back now, not when it reaches the front
    --ordered_live_;
    while (!ordered_.empty() && ordered_.front().settled) {
      ordered_.pop_front();
      ++first_seq_;
    }
    return;
  }
  side_.erase(seq);
}

std::vector<std::pair<channel::Message, std::string>> InFlightPushes::take_all() {
  std::vector<std::pair<channel::Message, std::string>> all;
  all.reserve(unsettled());
  for (Entry& e : ordered_) {
    if (!e.settled) all.emplace_back(e.message, std::move(e.payload));
  }
  for (auto& [seq, e] : side_) all.emplace_back(e.message, std::move(e.payload));
  ordered_.clear();
  side_.clear();
  ordered_live_ = 0;
  first_seq_ = next_seq_;
  std::sort(all.begin(), all.end(), [](const auto& a, const auto& b) {
    return a.first.queued_at_ns < b.first.queued_at_ns;
  });
  return all;
}

void InFlightPushes::compact_if_sparse() {
  if (ordered_.size() <= kSparseFloor + kSparseFactor * ordered_live_) return;
  for (Entry& e : ordered_) {
    if (!e.settled) side_.emplace(e.message.seq, std::move(e));
  }
  ordered_.clear();
  ordered_live_ = 0;
  first_seq_ = next_seq_;
}

}  // namespace iotsocket::master
