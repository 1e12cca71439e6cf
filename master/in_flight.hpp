// The pushes the master has handed to one worker and the worker has not settled yet (not
// written whole, not handed back). When the worker dies, these go back to their devices'
// queues: a crash loses no push that was in the channel or in the worker's memory (one
// written just before it may come twice). "Written" means in the connection's socket
// buffer, as for push_delivered: what the kernel discards when it resets the connections
// of a dead process is beyond this.
//
// Each push gets the next number of this worker's sequence (Message::seq) when it is sent,
// and the worker names that number when it settles the push. Kept in send order, a settle
// finds its entry by index, and the settled front is dropped. A push that stays unsettled
// for long (a device that reads nothing, its socket full) would hold every later entry:
// once settled entries outnumber the unsettled ones by far, the unsettled ones move to a
// side map and the ordered part starts empty. Memory stays in proportion to what is
// unsettled, and a settle stays O(1) on the common path. The master's loop owns it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/channel.hpp"

namespace iotsocket::master {

class InFlightPushes {
 public:
  // Keeps push `m` with its payload and gives it the next sequence number (set in the kept
  // message). Returns the kept message and payload: send those.
  std::pair<const channel::Message&, std::string_view> add(channel::Message m,
                                                           std::string payload);
  // The worker settled push `seq`; unknown or already settled numbers are ignored.
  void settle(std::uint64_t seq);
  // Every unsettled push, oldest queued_at_ns first; leaves it empty.
  std::vector<std::pair<channel::Message, std::string>> take_all();

  std::size_t unsettled() const noexcept { return ordered_live_ + side_.size(); }
  // Entries held in the ordered part, settled or not (for tests of the bound).
  std::size_t held() const noexcept { return ordered_.size(); }

 private:
  struct Entry {
    channel::Message message;
    std::string payload;
    bool settled = false;
  };
  void compact_if_sparse();

  std::deque<Entry> ordered_;  // sequence numbers first_seq_, first_seq_ + 1, ...
  std::uint64_t first_seq_ = 1;
  std::uint64_t next_seq_ = 1;
  std::size_t ordered_live_ = 0;  // unsettled entries in ordered_
  std::unordered_map<std::uint64_t, Entry> side_;  // unsettled ones moved out of ordered_
};

}  // namespace iotsocket::master
