// The device table's entries: the hash table, claims, marks, revocation and what the
// readers see, all lock-free atomics (design: README.md). The segment itself is
// segment.cpp's, the peer seqlock peer_seqlock.cpp's, a connection's lease lease.cpp's.
#include "shm/device_table.hpp"

#include <cstdlib>
#include <new>
#include <optional>
#include <vector>

#include <spdlog/spdlog.h>

#include "shm/layout.hpp"
#include "shm/refusal.hpp"

namespace iotsocket::shm {

using namespace detail;

namespace detail {

void invariant_failed(const char* what, std::uint64_t value) noexcept {
  spdlog::critical("device table: {} ({})", what, value);
  std::abort();
}

Entry* probe(Layout& l, DeviceId id, bool insert) noexcept {
  const std::uint64_t key = key_of(id);
  if (key == 0) return nullptr;
  const std::uint64_t mask = l.slot_count - 1;
  Entry* table = entries(l);
  std::uint64_t i = mix(key) & mask;
  for (std::uint32_t n = 0; n < l.slot_count; ++n, i = (i + 1) & mask) {
    std::uint64_t k = table[i].key.load(std::memory_order_acquire);
    if (k == 0) {
      if (!insert || l.devices.load(std::memory_order_relaxed) >= l.capacity) return nullptr;
      if (table[i].key.compare_exchange_strong(k, key, std::memory_order_acq_rel,
                                               std::memory_order_acquire)) {
        l.devices.fetch_add(1, std::memory_order_relaxed);
        return &table[i];
      }
      // Lost the slot: to the same device (use it) or to another one (probe on).
    }
    if (k == key) return &table[i];
  }
  return nullptr;
}


}  // namespace detail

namespace {

// --- claims ---

// The marks come along so that a replacing login can be checked before it displaces anyone.
ClaimResult held_by(const Entry& e, std::uint64_t word) noexcept {
  return ClaimResult{.status = ClaimStatus::held,
                     .previous = unpack(word),
                     .replay_mark = from_ticks(e.replay_mark.load(std::memory_order_acquire)),
                     .push_mark = from_ticks(e.push_mark.load(std::memory_order_acquire))};
}

// After a successful holder CAS: the peer, the close requests that predate the claim
// (`pending`, read before the CAS: a request that came later stays for the new holder),
// and the marks.
ClaimResult finish_claim(Entry& e, std::uint32_t pending, const PeerAddress& peer,
                         std::int64_t since_unix) noexcept {
  write_peer(e, peer, since_unix);
  e.skew.store(kNoSkew, std::memory_order_relaxed);  // the new session has none yet
  if (pending != 0) {
    e.close_requests.compare_exchange_strong(pending, 0, std::memory_order_acq_rel,
                                             std::memory_order_relaxed);
  }
  return ClaimResult{.status = ClaimStatus::claimed,
                     .replay_mark = from_ticks(e.replay_mark.load(std::memory_order_acquire)),
                     .push_mark = from_ticks(e.push_mark.load(std::memory_order_acquire))};
}

ClaimResult claim_entry(Entry& e, std::uint64_t mine, const PeerAddress& peer,
                        std::int64_t since_unix) noexcept {
  const std::uint32_t pending = e.close_requests.load(std::memory_order_acquire);
  std::uint64_t expected = 0;
  if (!e.holder.compare_exchange_strong(expected, mine, std::memory_order_acq_rel,
                                        std::memory_order_acquire)) {
    return held_by(e, expected);
  }
  return finish_claim(e, pending, peer, since_unix);
}

}  // namespace

// --- holders ---

ClaimResult DeviceTable::claim(DeviceId id, const Holder& me, const PeerAddress& peer,
                               std::int64_t since_unix) noexcept {
  check_me(me, *layout_);
  Entry* e = find_or_insert(*layout_, id);
  if (e == nullptr) return ClaimResult{.status = ClaimStatus::table_full};
  return with_lease(claim_entry(*e, pack(me), peer, since_unix), *e, me);
}

ClaimResult DeviceTable::take_over(DeviceId id, const Holder& previous, const Holder& me,
                                   const PeerAddress& peer, std::int64_t since_unix) noexcept {
  check_me(me, *layout_);
  Entry* e = find_or_insert(*layout_, id);
  if (e == nullptr) return ClaimResult{.status = ClaimStatus::table_full};
  const std::uint32_t pending = e->close_requests.load(std::memory_order_acquire);
  std::uint64_t current = 0;
  if (valid(previous, *layout_)) {
    current = pack(previous);
    if (e->holder.compare_exchange_strong(current, pack(me), std::memory_order_acq_rel,
                                          std::memory_order_acquire)) {
      ClaimResult result = finish_claim(*e, pending, peer, since_unix);
      result.previous = unpack(pack(previous));
      return with_lease(result, *e, me);
    }
  } else {
    current = e->holder.load(std::memory_order_acquire);
  }
  if (current != 0) return held_by(*e, current);
  return with_lease(claim_entry(*e, pack(me), peer, since_unix), *e, me);  // freed meanwhile
}

ClaimResult DeviceTable::with_lease(ClaimResult result, detail::Entry& e, const Holder& me) noexcept {
  if (result.status == ClaimStatus::claimed) result.lease = Lease(&e, pack(me), unpack(pack(me)));
  return result;
}

std::optional<Holder> DeviceTable::holder(DeviceId id) const noexcept {
  const Entry* e = lookup(*layout_, id);
  if (e == nullptr) return std::nullopt;
  const std::uint64_t word = e->holder.load(std::memory_order_acquire);
  if (word == 0) return std::nullopt;
  return unpack(word);
}

// --- devices show ---

void DeviceTable::note_refusal(DeviceId id, std::string_view reason,
                               std::int64_t unix_seconds) noexcept {
  const std::uint8_t code = refusal_code(reason);
  if (code == 0 || unix_seconds <= 0) return;
  Entry* e = find_or_insert(*layout_, id);
  if (e == nullptr) return;
  e->refusal.store(static_cast<std::uint64_t>(unix_seconds) << 8 | code, std::memory_order_relaxed);
  e->refusals.fetch_add(1, std::memory_order_relaxed);
}

Refusals DeviceTable::refusals(DeviceId id) const noexcept {
  const Entry* e = lookup(*layout_, id);
  if (e == nullptr) return {};
  const std::uint64_t word = e->refusal.load(std::memory_order_relaxed);
  return Refusals{.count = e->refusals.load(std::memory_order_relaxed),
                  .last_reason = refusal_name(static_cast<std::uint8_t>(word & 0xff)),
                  .last_unix = static_cast<std::int64_t>(word >> 8)};
}

// --- the master ---

std::size_t DeviceTable::release_worker(std::uint32_t worker, protocol::Time floor) noexcept {
  if (worker >= layout_->workers) return 0;
  const std::uint64_t field = std::uint64_t{worker} + 1;
  const std::int64_t floor_ticks = ticks(floor);
  Entry* table = entries(*layout_);
  std::size_t freed = 0;
  for (std::uint32_t i = 0; i < layout_->slot_count; ++i) {
    Entry& e = table[i];
    if (e.key.load(std::memory_order_acquire) == 0) continue;
    std::uint64_t word = e.holder.load(std::memory_order_acquire);
    while (word != 0 && worker_field(word) == field) {
      // The mark first: whoever claims the device after the CAS must see it.
      raise(e.replay_mark, floor_ticks);
      if (e.holder.compare_exchange_weak(word, 0, std::memory_order_acq_rel,
                                         std::memory_order_acquire)) {
        ++freed;
        break;
      }
    }
  }
  return freed;
}

// --- revocation ---

void DeviceTable::request_close(DeviceId id) noexcept {
  Entry* e = lookup(*layout_, id);
  if (e == nullptr) return;  // never claimed: nobody to close
  // The request before the epoch: a worker that sees the new epoch sees the request.
  e->close_requests.fetch_add(1, std::memory_order_acq_rel);
  layout_->close_epoch.fetch_add(1, std::memory_order_acq_rel);
}

std::uint64_t DeviceTable::close_epoch() const noexcept {
  return layout_->close_epoch.load(std::memory_order_acquire);
}

bool DeviceTable::take_close_request(DeviceId id) noexcept {
  Entry* e = lookup(*layout_, id);
  return e != nullptr && e->close_requests.exchange(0, std::memory_order_acq_rel) != 0;
}

// --- reading ---

namespace {

// The device's holder with its peer and login time; false when the entry is free.
bool snapshot(const Entry& e, std::uint64_t key, DeviceSnapshot& s) noexcept {
  const std::uint64_t word = e.holder.load(std::memory_order_acquire);
  if (word == 0) return false;
  s = DeviceSnapshot{.id = DeviceId{key - 1}, .holder = unpack(word)};
  // No stable copy (a writer is busy, or died mid-write): the device without its peer,
  // rather than a torn one.
  if (!read_peer(e, s.peer, s.since_unix)) {
    s.peer = PeerAddress{};
    s.since_unix = 0;
  }
  if (const std::uint64_t skew = e.skew.load(std::memory_order_relaxed); skew != kNoSkew) {
    s.skew = unpack_skew(skew);
  }
  return true;
}

}  // namespace

std::optional<DeviceSnapshot> DeviceTable::find(DeviceId id) const noexcept {
  const Entry* e = lookup(*layout_, id);
  DeviceSnapshot s;
  if (e == nullptr || !snapshot(*e, key_of(id), s)) return std::nullopt;
  return s;
}

WorkerCounters& DeviceTable::counters(std::uint32_t worker) noexcept {
  if (worker >= layout_->workers) invariant_failed("counters of a worker out of range", worker);
  return *counters_at(*layout_, worker);
}

const WorkerCounters& DeviceTable::counters(std::uint32_t worker) const noexcept {
  if (worker >= layout_->workers) invariant_failed("counters of a worker out of range", worker);
  return *counters_at(*layout_, worker);
}

std::vector<DeviceSnapshot> DeviceTable::connected() const {
  std::vector<DeviceSnapshot> out;
  try {
    const Entry* table = entries(*layout_);
    for (std::uint32_t i = 0; i < layout_->slot_count; ++i) {
      const Entry& e = table[i];
      const std::uint64_t key = e.key.load(std::memory_order_acquire);
      if (key == 0) continue;
      DeviceSnapshot s;
      if (snapshot(e, key, s)) out.push_back(s);
    }
  } catch (const std::bad_alloc&) {
    // What fitted; the caller (iotsocketctl) shows it rather than nothing.
  }
  return out;
}

}  // namespace iotsocket::shm
