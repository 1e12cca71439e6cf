// The segment's contents: the header, the counters of each worker and the device entries,
// and the small functions every part of the table uses on them (design: README.md). Private
// to shm/: nothing outside this folder sees a Boost or Entry type.
#pragma once

#include <netinet/in.h>

#include <array>
#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <string>

#include "shm/device_table.hpp"

namespace iotsocket::shm {

// Every atomic in the segment is touched by several processes: it must be a plain
// lock-free instruction, never a lock hidden in libatomic (a dead process could hold it).
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic<std::int64_t>::is_always_lock_free);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);

namespace detail {

// "IOTSDEV1" read as a little-endian word; the version changes with the layout.
constexpr std::uint64_t kMagic = 0x3156454453544f49ULL;
constexpr std::uint32_t kVersion = 4;  // 2: skew and refusals in Entry; 3: WorkerCounters grew past one cache line; 4: back-pressure and handshake counters

// The holder word: worker+1 (12 bits) | slot (24 bits) | conn_generation (28 bits).
// Zero means free, which worker+1 >= 1 keeps apart from every holder.
constexpr unsigned kGenerationBits = 28;
constexpr unsigned kSlotBits = 24;
constexpr std::uint64_t kGenerationMask = (std::uint64_t{1} << kGenerationBits) - 1;
constexpr std::uint64_t kSlotMask = (std::uint64_t{1} << kSlotBits) - 1;
constexpr std::uint32_t kMaxWorkers = 4095;  // worker+1 must fit in 12 bits
constexpr std::uint32_t kMaxCapacity = std::uint32_t{1} << 24;

// No skew recorded: both halves INT32_MIN, which skew_ms() never gives.
constexpr std::uint64_t kNoSkew = 0x8000000080000000ULL;

constexpr std::size_t kCacheLine = 64;
constexpr std::size_t kPeerWords = 4;  // 32 bytes: a sockaddr_in6 (28) fits
static_assert(sizeof(sockaddr_in6) <= kPeerWords * sizeof(std::uint64_t));

// Bounds of the per-entry seqlock. A writer spins this often for another writer to finish
// (a claim and a take-over of one device a moment apart) and then overtakes it (it may be
// dead: SIGKILLed mid-write); a reader retries this often, yielding for the last few, and
// then does without the peer. Neither ever waits for a process to do something.
constexpr int kWriterSpins = 64;
constexpr int kReaderTries = 16;
constexpr int kReaderSpinsBeforeYield = 12;

// One device. `key` is set once (0 -> id+1) and never cleared; `holder` is the claim;
// `peer_*` and `since_unix` are written by the claimer under `peer_version`, a seqlock
// whose value is odd while a write is in progress, plus `peer_check`, a hash of them that
// catches the one mix the version cannot: an overtaken writer's late stores. They are
// atomics accessed relaxed, so a torn read is detected, never a data race.
struct Entry {
  std::atomic<std::uint64_t> key{0};
  std::atomic<std::uint64_t> holder{0};
  std::atomic<std::int64_t> replay_mark{0};  // protocol::Tick counts
  std::atomic<std::int64_t> push_mark{0};
  std::atomic<std::uint32_t> close_requests{0};  // requests not yet taken; 0 = none
  std::atomic<std::uint32_t> peer_version{0};
  std::atomic<std::int64_t> since_unix{0};
  std::atomic<std::uint32_t> peer_length{0};
  std::atomic<std::uint32_t> refusals{0};  // devices show: refused logins since creation
  std::array<std::atomic<std::uint64_t>, kPeerWords> peer_words{};
  std::atomic<std::uint64_t> peer_check{0};
  // iotsocketctl devices show: one word each, so a reader never sees half of an update.
  std::atomic<std::uint64_t> skew{kNoSkew};  // pack_skew() of the holder's recent frames
  std::atomic<std::uint64_t> refusal{0};     // unix seconds << 8 | refusal code; 0 none
};
// The table holds 2-4 slots per device: every byte here counts that often (refusals sits
// in what was padding).
static_assert(sizeof(Entry) == 112);

// --- words of devices show ---

inline std::uint64_t pack_skew(const ClockSkew& s) noexcept {
  return (std::uint64_t{static_cast<std::uint32_t>(s.last_ms)} << 32) |
         static_cast<std::uint32_t>(s.largest_ms);
}
inline ClockSkew unpack_skew(std::uint64_t word) noexcept {
  return ClockSkew{.last_ms = static_cast<std::int32_t>(static_cast<std::uint32_t>(word >> 32)),
                   .largest_ms = static_cast<std::int32_t>(static_cast<std::uint32_t>(word))};
}

constexpr std::size_t round_up(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }

// Each worker's counters start on their own cache line (a worker writes only its own).
constexpr std::size_t kCountersStride = round_up(sizeof(WorkerCounters), kCacheLine);

inline std::string display_name(const std::string& name) {
  return name.starts_with('/') ? name : "/" + name;
}

// A broken internal invariant: logged, then abort() (device_table.cpp).
[[noreturn]] void invariant_failed(const char* what, std::uint64_t value) noexcept;

}  // namespace detail

// The segment's first bytes. magic, version, master_pid and master_start keep their
// offsets in every version, so that create() can tell a live server of any version.
// The plain fields are written once by create() before it publishes `magic` (release).
struct DeviceTable::Layout {
  std::atomic<std::uint64_t> magic{0};
  std::uint32_t version = 0;
  std::uint32_t reserved = 0;
  std::int64_t master_pid = 0;
  std::uint64_t master_start = 0;  // the master's start time (/proc stat field 22), 0 unknown
  std::uint32_t capacity = 0;
  std::uint32_t workers = 0;
  std::uint32_t slot_count = 0;  // a power of two, >= 2 * capacity
  std::uint32_t reserved2 = 0;
  std::uint64_t counters_offset = 0;
  std::uint64_t entries_offset = 0;
  std::uint64_t total_size = 0;
  alignas(detail::kCacheLine) std::atomic<std::uint64_t> close_epoch{0};
  std::atomic<std::uint64_t> devices{0};  // keys inserted; can fall short after a SIGKILL
};

namespace detail {

using Layout = DeviceTable::Layout;

struct Geometry {
  std::uint32_t slot_count = 0;
  std::size_t counters_offset = 0;
  std::size_t entries_offset = 0;
  std::size_t total_size = 0;
};

inline Geometry geometry(std::uint32_t capacity, std::uint32_t workers) {
  Geometry g;
  g.slot_count = std::bit_ceil(2 * capacity);
  g.counters_offset = round_up(sizeof(Layout), kCacheLine);
  g.entries_offset = round_up(g.counters_offset + workers * kCountersStride, kCacheLine);
  g.total_size = g.entries_offset + std::size_t{g.slot_count} * sizeof(Entry);
  return g;
}

inline std::byte* base(Layout& l) noexcept { return reinterpret_cast<std::byte*>(&l); }
inline Entry* entries(Layout& l) noexcept {
  return reinterpret_cast<Entry*>(base(l) + l.entries_offset);
}
inline WorkerCounters* counters_at(Layout& l, std::uint32_t worker) noexcept {
  return reinterpret_cast<WorkerCounters*>(base(l) + l.counters_offset + worker * kCountersStride);
}

// --- holders ---

inline bool valid(const Holder& h, const Layout& l) noexcept {
  return h.worker < l.workers && h.slot <= kSlotMask;
}
inline std::uint64_t pack(const Holder& h) noexcept {
  return ((std::uint64_t{h.worker} + 1) << (kSlotBits + kGenerationBits)) |
         (std::uint64_t{h.slot} << kGenerationBits) | (h.conn_generation & kGenerationMask);
}
inline Holder unpack(std::uint64_t word) noexcept {
  return Holder{.worker = static_cast<std::uint32_t>((word >> (kSlotBits + kGenerationBits)) - 1),
                .slot = static_cast<std::uint32_t>((word >> kGenerationBits) & kSlotMask),
                .conn_generation = static_cast<std::uint32_t>(word & kGenerationMask)};
}
// The worker+1 field, 0 for a free word.
inline std::uint64_t worker_field(std::uint64_t word) noexcept { return word >> (kSlotBits + kGenerationBits); }

// A claim's `me` outside the table breaks the packing (another holder's word): abort.
inline void check_me(const Holder& me, const Layout& l) noexcept {
  if (me.worker >= l.workers) invariant_failed("holder worker index out of range", me.worker);
  if (me.slot > kSlotMask) invariant_failed("holder slot out of range", me.slot);
}

// --- the hash table ---

inline std::uint64_t key_of(DeviceId id) noexcept { return id.value + 1; }  // 0 only for UINT64_MAX

inline std::uint64_t mix(std::uint64_t x) noexcept {  // MurmurHash3's finalizer
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

// Walks the device's probe sequence. Keys are never cleared, so the first empty slot ends
// it: the device is not in the table. With `insert`, that slot is taken (CAS 0 -> key); a
// new device is refused once `capacity` are in (concurrent inserts may pass that by a few,
// never beyond the slots). In device_table.cpp.
Entry* probe(Layout& l, DeviceId id, bool insert) noexcept;
inline Entry* lookup(Layout& l, DeviceId id) noexcept { return probe(l, id, false); }
inline Entry* find_or_insert(Layout& l, DeviceId id) noexcept { return probe(l, id, true); }

inline void raise(std::atomic<std::int64_t>& mark, std::int64_t value) noexcept {
  std::int64_t current = mark.load(std::memory_order_relaxed);
  while (current < value &&
         !mark.compare_exchange_weak(current, value, std::memory_order_acq_rel,
                                     std::memory_order_relaxed)) {
  }
}

inline std::int64_t ticks(protocol::Time t) noexcept { return t.time_since_epoch().count(); }
inline protocol::Time from_ticks(std::int64_t n) noexcept { return protocol::Time{protocol::Tick{n}}; }

// --- the peer seqlock (peer_seqlock.cpp) ---

// The claimer's write of the peer and login time; never waits for another writer.
void write_peer(Entry& e, const PeerAddress& peer, std::int64_t since_unix) noexcept;
// False when no whole copy was seen within kReaderTries.
bool read_peer(const Entry& e, PeerAddress& peer, std::int64_t& since_unix) noexcept;

}  // namespace detail
}  // namespace iotsocket::shm
