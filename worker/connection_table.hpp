// ConnectionTable: a worker's connections by slot, and the tags that name them in epoll and
// to the master. A tag is the slot in the low half and the connection's generation in the
// high half, so that an event or a message for a slot that was closed and reused meanwhile
// is recognised as stale; generations fit the device directory's holder word (shm::Holder).
//
// Owns the connections (closing one closes its socket, which takes it out of epoll); uses
// the worker's epoll set, which it does not own. Also keeps the connections paused for want
// of room in the inbound sink, by tag.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "worker/connection.hpp"

namespace iotsocket::worker {

class ConnectionTable {
 public:
  // Tags that name no connection (slots never reach them).
  static constexpr std::uint32_t kChannelSlot = 0xffffffff;
  static constexpr std::uint32_t kSinkSlot = 0xfffffffe;
  static constexpr std::uint32_t kGenerationMask = 0x0fffffff;

  static constexpr std::uint64_t tag(std::uint32_t slot, std::uint32_t generation) noexcept {
    return (std::uint64_t{generation} << 32) | slot;
  }
  static constexpr std::uint64_t tag_of(const Connection& c) noexcept { return tag(c.slot, c.generation); }
  static constexpr std::uint32_t slot_of(std::uint64_t tag) noexcept { return static_cast<std::uint32_t>(tag); }

  explicit ConnectionTable(int epoll) noexcept : epoll_(epoll) {}

  // Takes the connection into a free slot (the most recently freed first) with the next
  // generation.
  Connection& add(std::unique_ptr<Connection> connection);
  // Registers the connection with epoll for EPOLLIN; false (errno set) when that fails.
  bool watch(Connection& c) noexcept;
  // The connection the tag names; nullptr when it has closed (or its slot was reused).
  Connection* find(std::uint64_t tag) noexcept;
  // Destroys the connection and frees its slot.
  void remove(Connection& c) noexcept;

  std::size_t size() const noexcept { return live_; }
  // Calls f(Connection&) on each, in slot order; f may remove the one it is given.
  template <class F>
  void for_each(F&& f) {
    for (std::size_t i = 0; i < slots_.size(); ++i) {
      if (slots_[i]) f(*slots_[i]);
    }
  }
  std::vector<std::uint64_t> tags() const;

  // The epoll interest of a connection; EPOLLOUT is added while pushes wait to be written.
  void set_interest(Connection& c, std::uint32_t events) noexcept;
  // Stops reading a connection until resumed (the inbound sink is full).
  void pause(Connection& c) noexcept;
  bool any_paused() const noexcept { return !paused_.empty(); }
  // The tags of the paused connections, oldest first; the list is empty afterwards.
  std::vector<std::uint64_t> take_paused() noexcept;
  std::size_t paused_count() const noexcept { return paused_.size(); }

 private:
  int epoll_;
  std::vector<std::unique_ptr<Connection>> slots_;
  std::vector<std::uint32_t> free_slots_;
  std::vector<std::uint64_t> paused_;
  std::size_t live_ = 0;
  std::uint32_t next_generation_ = 1;
};

}  // namespace iotsocket::worker
