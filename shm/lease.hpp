// A lease: a connection's hold on one device's entry in the device table, as its claim
// returned it. The entry's address comes with the claim, so what a connection does per
// frame (is it still mine, raise the replay mark, show the skew) costs no hash lookup:
// one accepted frame is one access to one entry.
//
// A handle, not an owner: copying it copies the address. The hold is in shared memory and
// outlives this process; it ends with release(), when another login takes the device over
// (holds() turns false), or when the master frees a dead worker's devices. The table's
// mapping must outlive every lease on it (a worker's mapping lives as long as the process).
#pragma once

#include <cstdint>

#include "common/clock_skew.hpp"
#include "protocol/time.hpp"

namespace iotsocket::shm {

// One connection of one worker: the holder of a device.
struct Holder {
  std::uint32_t worker = 0;           // worker index, 0 .. workers-1 (workers at most 4095)
  std::uint32_t slot = 0;             // the worker's connection slot (below 2^24)
  std::uint32_t conn_generation = 0;  // tells a reused slot from its earlier occupant (low 28 bits kept)
  friend bool operator==(const Holder&, const Holder&) = default;
};

namespace detail {
struct Entry;
}

class Lease {
 public:
  Lease() = default;  // holds nothing

  // Whether this lease was granted and not released (it may have been taken over since).
  explicit operator bool() const noexcept { return entry_ != nullptr; }
  const Holder& holder() const noexcept { return holder_; }

  // Whether the device is still ours: false once another login took it over, the master
  // freed it, or release() was called.
  bool holds() const noexcept;
  // An accepted frame: raises the replay mark to `t` and shows `skew` (devices show), and
  // says whether the lease still held the device. Both are written either way: the frame
  // was accepted, and a takeover that came a moment ago reads its mark from the claim.
  bool accept(protocol::Time t, const ClockSkew& skew) noexcept;
  // Marks only ever rise (atomic max).
  void raise_replay_mark(protocol::Time t) noexcept;
  void raise_push_mark(protocol::Time t) noexcept;  // the last TIME written to the device
  // Ends the hold; false (and nothing changed in the table) when it was no longer ours.
  // The lease holds nothing afterwards.
  bool release() noexcept;

 private:
  friend class DeviceTable;
  Lease(detail::Entry* entry, std::uint64_t word, const Holder& holder) noexcept
      : entry_(entry), word_(word), holder_(holder) {}

  detail::Entry* entry_ = nullptr;
  std::uint64_t word_ = 0;  // the entry's holder word while we hold it
  Holder holder_{};
};

}  // namespace iotsocket::shm
