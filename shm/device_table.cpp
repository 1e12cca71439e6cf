// The shared-memory device table: a header, a block of counters per worker, and an
// open-addressing hash table of device entries, all lock-free atomics (design: README.md).
#include "shm/device_table.hpp"

#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cerrno>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <optional>
#include <utility>

#include <boost/interprocess/exceptions.hpp>
#include <boost/interprocess/mapped_region.hpp>
#include <boost/interprocess/shared_memory_object.hpp>
#include <spdlog/spdlog.h>

#include "shm/refusal.hpp"

namespace iotsocket::shm {

namespace bip = boost::interprocess;

// Every atomic in the segment is touched by several processes: it must be a plain
// lock-free instruction, never a lock hidden in libatomic (a dead process could hold it).
static_assert(std::atomic<std::uint64_t>::is_always_lock_free);
static_assert(std::atomic<std::int64_t>::is_always_lock_free);
static_assert(std::atomic<std::uint32_t>::is_always_lock_free);

namespace {

// "IOTSDEV1" read as a little-endian word; the version changes with the layout.
constexpr std::uint64_t kMagic = 0x3156454453544f49ULL;
constexpr std::uint32_t kVersion = 3;  // 2: skew and refusals in Entry; 3: WorkerCounters grew past one cache line

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

std::uint64_t pack_skew(const ClockSkew& s) noexcept {
  return (std::uint64_t{static_cast<std::uint32_t>(s.last_ms)} << 32) |
         static_cast<std::uint32_t>(s.largest_ms);
}
ClockSkew unpack_skew(std::uint64_t word) noexcept {
  return ClockSkew{.last_ms = static_cast<std::int32_t>(static_cast<std::uint32_t>(word >> 32)),
                   .largest_ms = static_cast<std::int32_t>(static_cast<std::uint32_t>(word))};
}

constexpr std::size_t round_up(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }

// Each worker's counters start on their own cache line (a worker writes only its own).
constexpr std::size_t kCountersStride = round_up(sizeof(WorkerCounters), kCacheLine);

std::string display_name(const std::string& name) {
  return name.starts_with('/') ? name : "/" + name;
}

[[noreturn]] void invariant_failed(const char* what, std::uint64_t value) noexcept {
  spdlog::critical("device table: {} ({})", what, value);
  std::abort();
}

}  // namespace

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
  alignas(kCacheLine) std::atomic<std::uint64_t> close_epoch{0};
  std::atomic<std::uint64_t> devices{0};  // keys inserted; can fall short after a SIGKILL
};

struct DeviceTable::Mapping {
  std::string name;
  bip::mapped_region region;
};

namespace {

using Layout = DeviceTable::Layout;

struct Geometry {
  std::uint32_t slot_count = 0;
  std::size_t counters_offset = 0;
  std::size_t entries_offset = 0;
  std::size_t total_size = 0;
};

Geometry geometry(std::uint32_t capacity, std::uint32_t workers) {
  Geometry g;
  g.slot_count = std::bit_ceil(2 * capacity);
  g.counters_offset = round_up(sizeof(Layout), kCacheLine);
  g.entries_offset = round_up(g.counters_offset + workers * kCountersStride, kCacheLine);
  g.total_size = g.entries_offset + std::size_t{g.slot_count} * sizeof(Entry);
  return g;
}

std::byte* base(Layout& l) noexcept { return reinterpret_cast<std::byte*>(&l); }
Entry* entries(Layout& l) noexcept {
  return reinterpret_cast<Entry*>(base(l) + l.entries_offset);
}
WorkerCounters* counters_at(Layout& l, std::uint32_t worker) noexcept {
  return reinterpret_cast<WorkerCounters*>(base(l) + l.counters_offset + worker * kCountersStride);
}

// --- holders ---

bool valid(const Holder& h, const Layout& l) noexcept {
  return h.worker < l.workers && h.slot <= kSlotMask;
}
std::uint64_t pack(const Holder& h) noexcept {
  return ((std::uint64_t{h.worker} + 1) << (kSlotBits + kGenerationBits)) |
         (std::uint64_t{h.slot} << kGenerationBits) | (h.conn_generation & kGenerationMask);
}
Holder unpack(std::uint64_t word) noexcept {
  return Holder{.worker = static_cast<std::uint32_t>((word >> (kSlotBits + kGenerationBits)) - 1),
                .slot = static_cast<std::uint32_t>((word >> kGenerationBits) & kSlotMask),
                .conn_generation = static_cast<std::uint32_t>(word & kGenerationMask)};
}
// The worker+1 field, 0 for a free word.
std::uint64_t worker_field(std::uint64_t word) noexcept { return word >> (kSlotBits + kGenerationBits); }

// A claim's `me` outside the table breaks the packing (another holder's word): abort.
void check_me(const Holder& me, const Layout& l) noexcept {
  if (me.worker >= l.workers) invariant_failed("holder worker index out of range", me.worker);
  if (me.slot > kSlotMask) invariant_failed("holder slot out of range", me.slot);
}

// --- the hash table ---

std::uint64_t key_of(DeviceId id) noexcept { return id.value + 1; }  // 0 only for UINT64_MAX

std::uint64_t mix(std::uint64_t x) noexcept {  // MurmurHash3's finalizer
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
// never beyond the slots).
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

Entry* lookup(Layout& l, DeviceId id) noexcept { return probe(l, id, false); }
Entry* find_or_insert(Layout& l, DeviceId id) noexcept { return probe(l, id, true); }

void raise(std::atomic<std::int64_t>& mark, std::int64_t value) noexcept {
  std::int64_t current = mark.load(std::memory_order_relaxed);
  while (current < value &&
         !mark.compare_exchange_weak(current, value, std::memory_order_acq_rel,
                                     std::memory_order_relaxed)) {
  }
}

std::int64_t ticks(protocol::Time t) noexcept { return t.time_since_epoch().count(); }
protocol::Time from_ticks(std::int64_t n) noexcept { return protocol::Time{protocol::Tick{n}}; }

// --- the peer seqlock ---

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

struct PeerData {
  std::array<std::uint64_t, kPeerWords> words{};
  std::uint32_t length = 0;
  std::int64_t since_unix = 0;

  // Never 0, so an entry whose peer was never written does not pass as one.
  std::uint64_t check() const noexcept {
    std::uint64_t h = mix(length ^ 0x9e3779b97f4a7c15ULL) ^ static_cast<std::uint64_t>(since_unix);
    for (const std::uint64_t w : words) h = mix(h) ^ w;
    h = mix(h);
    return h == 0 ? 1 : h;
  }
};

// Makes the version odd and returns it. Spins (bounded) while another write is in
// progress, then overtakes it: odd -> odd+2, so readers that saw its version retry.
std::uint32_t begin_write(std::atomic<std::uint32_t>& version) noexcept {
  std::uint32_t v = version.load(std::memory_order_relaxed);
  for (int i = 0; i < kWriterSpins && (v & 1); ++i) {
    cpu_relax();
    v = version.load(std::memory_order_relaxed);
  }
  std::uint32_t next = 0;
  do {
    next = (v & 1) ? v + 2 : v + 1;
  } while (!version.compare_exchange_weak(v, next, std::memory_order_relaxed));
  std::atomic_thread_fence(std::memory_order_release);  // the version before the data
  return next;
}

void write_peer(Entry& e, const PeerAddress& peer, std::int64_t since_unix) noexcept {
  PeerData d;
  std::memcpy(d.words.data(), &peer.storage, std::min(sizeof d.words, sizeof peer.storage));
  d.length = static_cast<std::uint32_t>(std::min<std::size_t>(peer.length, sizeof d.words));
  d.since_unix = since_unix;
  const std::uint32_t odd = begin_write(e.peer_version);
  for (std::size_t i = 0; i < kPeerWords; ++i) e.peer_words[i].store(d.words[i], std::memory_order_relaxed);
  e.peer_length.store(d.length, std::memory_order_relaxed);
  e.since_unix.store(d.since_unix, std::memory_order_relaxed);
  e.peer_check.store(d.check(), std::memory_order_relaxed);
  // Ends our write unless another writer overtook it (that one ends its own).
  std::uint32_t expected = odd;
  e.peer_version.compare_exchange_strong(expected, odd + 1, std::memory_order_release,
                                         std::memory_order_relaxed);
}

// False when no whole copy was seen within kReaderTries.
bool read_peer(const Entry& e, PeerAddress& peer, std::int64_t& since_unix) noexcept {
  for (int i = 0; i < kReaderTries; ++i) {
    if (i >= kReaderSpinsBeforeYield) {
      ::sched_yield();
    } else if (i > 0) {
      cpu_relax();
    }
    const std::uint32_t before = e.peer_version.load(std::memory_order_acquire);
    if (before & 1) continue;
    PeerData d;
    for (std::size_t w = 0; w < kPeerWords; ++w) d.words[w] = e.peer_words[w].load(std::memory_order_relaxed);
    d.length = e.peer_length.load(std::memory_order_relaxed);
    d.since_unix = e.since_unix.load(std::memory_order_relaxed);
    const std::uint64_t check = e.peer_check.load(std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_acquire);  // the data before the version
    if (e.peer_version.load(std::memory_order_relaxed) != before || check != d.check()) continue;
    peer = PeerAddress{};
    std::memcpy(&peer.storage, d.words.data(), std::min(sizeof d.words, sizeof peer.storage));
    peer.length = static_cast<socklen_t>(d.length);
    since_unix = d.since_unix;
    return true;
  }
  return false;
}

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

// --- processes ---

struct ProcStat {
  char state = '?';
  std::uint64_t start_time = 0;
};

// State (field 3) and start time (field 22) of /proc/<pid>/stat; nullopt when unreadable.
std::optional<ProcStat> proc_stat(pid_t pid) noexcept {
  char path[64];
  std::snprintf(path, sizeof path, "/proc/%d/stat", static_cast<int>(pid));
  const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  char buf[1024];
  const ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  if (n <= 0) return std::nullopt;
  buf[n] = '\0';
  const char* p = std::strrchr(buf, ')');  // the command name may contain anything
  if (p == nullptr) return std::nullopt;
  ProcStat st;
  int field = 2;
  for (const char* tok = p + 1; *tok != '\0';) {
    while (*tok == ' ') ++tok;
    if (*tok == '\0') break;
    ++field;
    if (field == 3) st.state = *tok;
    if (field == 22) {
      st.start_time = std::strtoull(tok, nullptr, 10);
      return st;
    }
    while (*tok != ' ' && *tok != '\0') ++tok;
  }
  return std::nullopt;
}

std::uint64_t own_start_time() noexcept {
  const auto st = proc_stat(::getpid());
  return st ? st->start_time : 0;
}

// Whether the master recorded in a segment still runs: the pid exists (EPERM: it does,
// as another user), is no zombie, and has the recorded start time (not a reused pid).
bool master_alive(std::int64_t pid, std::uint64_t start_time) noexcept {
  if (pid <= 0 || pid > std::numeric_limits<pid_t>::max()) return false;
  const auto p = static_cast<pid_t>(pid);
  if (::kill(p, 0) != 0 && errno != EPERM) return false;
  const auto st = proc_stat(p);
  if (!st) return true;  // no /proc (or hidden): trust kill()
  if (st->state == 'Z' || st->state == 'X') return false;
  return start_time == 0 || st->start_time == 0 || st->start_time == start_time;
}

// The segment a master of this name left: an error when its master is alive, else
// nothing (a stale or foreign segment is removed by the caller).
std::optional<std::string> check_existing(const std::string& name) {
  std::int64_t pid = 0;
  std::uint64_t start = 0;
  try {
    bip::shared_memory_object shm(bip::open_only, name.c_str(), bip::read_only);
    bip::offset_t size = 0;
    if (!shm.get_size(size) || size < static_cast<bip::offset_t>(sizeof(Layout))) return std::nullopt;
    bip::mapped_region region(shm, bip::read_only, 0, sizeof(Layout));
    const auto* l = static_cast<const Layout*>(region.get_address());
    if (l->magic.load(std::memory_order_acquire) != kMagic) return std::nullopt;
    pid = l->master_pid;
    start = l->master_start;
  } catch (const bip::interprocess_exception& e) {
    if (e.get_error_code() == bip::not_found_error) return std::nullopt;
    return "cannot open the existing shared memory segment " + display_name(name) + ": " + e.what();
  }
  if (pid != ::getpid() && master_alive(pid, start)) {
    return "shared memory segment " + display_name(name) + " is in use by iotsocketd pid " +
           std::to_string(pid) + " (another server with the same runtime.shm_name?)";
  }
  return std::nullopt;
}

// Constructs the header, counters and entries in a zeroed segment and publishes it.
void initialize(void* address, std::uint32_t capacity, std::uint32_t workers, const Geometry& g) {
  auto* l = new (address) Layout{};
  l->version = kVersion;
  l->master_pid = ::getpid();
  l->master_start = own_start_time();
  l->capacity = capacity;
  l->workers = workers;
  l->slot_count = g.slot_count;
  l->counters_offset = g.counters_offset;
  l->entries_offset = g.entries_offset;
  l->total_size = g.total_size;
  for (std::uint32_t w = 0; w < workers; ++w) new (counters_at(*l, w)) WorkerCounters{};
  for (std::uint32_t i = 0; i < g.slot_count; ++i) new (entries(*l) + i) Entry{};
  l->magic.store(kMagic, std::memory_order_release);
}

// Whether a mapped header describes a table that fits in `size` bytes.
bool consistent(const Layout& l, std::size_t size) noexcept {
  if (l.version != kVersion || l.capacity == 0 || l.capacity > kMaxCapacity ||
      l.workers == 0 || l.workers > kMaxWorkers) {
    return false;
  }
  const Geometry g = geometry(l.capacity, l.workers);
  return l.slot_count == g.slot_count && l.counters_offset == g.counters_offset &&
         l.entries_offset == g.entries_offset && l.total_size == g.total_size &&
         g.total_size <= size;
}

}  // namespace

// --- creation ---

Expected<DeviceTable, std::string> DeviceTable::create(const std::string& name,
                                                       std::uint32_t capacity,
                                                       std::uint32_t workers) {
  const std::string shown = display_name(name);
  try {
    if (capacity == 0 || capacity > kMaxCapacity) {
      return Unexpected("device table " + shown + ": capacity must be 1.." +
                        std::to_string(kMaxCapacity) + ", got " + std::to_string(capacity));
    }
    if (workers == 0 || workers > kMaxWorkers) {
      return Unexpected("device table " + shown + ": workers must be 1.." +
                        std::to_string(kMaxWorkers) + ", got " + std::to_string(workers));
    }
    if (auto error = check_existing(name)) return Unexpected(std::move(*error));
    bip::shared_memory_object::remove(name.c_str());  // stale: a crashed run, or not ours

    const Geometry g = geometry(capacity, workers);
    auto mapping = std::make_unique<Mapping>();
    mapping->name = name;
    bool created = false;
    try {
      // 0660: iotsocketctl, run by a member of the server's group, attaches read-write.
      bip::permissions perm;
      perm.set_permissions(0660);
      bip::shared_memory_object shm(bip::create_only, name.c_str(), bip::read_write, perm);
      created = true;
      shm.truncate(static_cast<bip::offset_t>(g.total_size));
      // Reserve the pages now: a full /dev/shm is an error here, not a SIGBUS in a worker.
      const int rc = ::posix_fallocate(shm.get_mapping_handle().handle, 0,
                                       static_cast<off_t>(g.total_size));
      if (rc != 0 && rc != EOPNOTSUPP && rc != EINVAL) {
        bip::shared_memory_object::remove(name.c_str());
        return Unexpected("cannot reserve " + std::to_string(g.total_size) +
                          " bytes for shared memory segment " + shown + ": " +
                          std::strerror(rc) + " (is /dev/shm large enough?)");
      }
      mapping->region = bip::mapped_region(shm, bip::read_write);
    } catch (const bip::interprocess_exception& e) {
      if (created) bip::shared_memory_object::remove(name.c_str());
      return Unexpected("cannot create shared memory segment " + shown + ": " + e.what());
    }
    initialize(mapping->region.get_address(), capacity, workers, g);
    return DeviceTable(std::move(mapping));
  } catch (const std::exception& e) {
    return Unexpected("cannot create shared memory segment " + shown + ": " + e.what());
  } catch (...) {
    return Unexpected("cannot create shared memory segment " + shown + ": unknown error");
  }
}

Expected<DeviceTable, std::string> DeviceTable::attach(const std::string& name) {
  const std::string shown = display_name(name);
  try {
    auto mapping = std::make_unique<Mapping>();
    mapping->name = name;
    try {
      bip::shared_memory_object shm(bip::open_only, name.c_str(), bip::read_write);
      bip::offset_t size = 0;
      if (!shm.get_size(size) || size < static_cast<bip::offset_t>(sizeof(Layout))) {
        return Unexpected("shared memory segment " + shown +
                          " is not an iotsocketd device table (too small)");
      }
      mapping->region = bip::mapped_region(shm, bip::read_write);
    } catch (const bip::interprocess_exception& e) {
      if (e.get_error_code() == bip::not_found_error) {
        return Unexpected("no shared memory segment " + shown +
                          ": is iotsocketd running (runtime.shm_name)?");
      }
      return Unexpected("cannot attach to shared memory segment " + shown + ": " + e.what());
    }
    const auto* l = static_cast<const Layout*>(mapping->region.get_address());
    if (l->magic.load(std::memory_order_acquire) != kMagic) {
      return Unexpected("shared memory segment " + shown + " is not an iotsocketd device table");
    }
    if (!consistent(*l, mapping->region.get_size())) {
      return Unexpected("shared memory segment " + shown +
                        " is a device table of another iotsocketd version (restart iotsocketd "
                        "or use the matching iotsocketctl)");
    }
    return DeviceTable(std::move(mapping));
  } catch (const std::exception& e) {
    return Unexpected("cannot attach to shared memory segment " + shown + ": " + e.what());
  } catch (...) {
    return Unexpected("cannot attach to shared memory segment " + shown + ": unknown error");
  }
}

DeviceTable::DeviceTable(std::unique_ptr<Mapping> mapping) noexcept
    : mapping_(std::move(mapping)),
      layout_(static_cast<Layout*>(mapping_->region.get_address())) {}

DeviceTable::DeviceTable(DeviceTable&& other) noexcept
    : mapping_(std::move(other.mapping_)), layout_(std::exchange(other.layout_, nullptr)) {}

DeviceTable& DeviceTable::operator=(DeviceTable&& other) noexcept {
  if (this != &other) {
    mapping_ = std::move(other.mapping_);
    layout_ = std::exchange(other.layout_, nullptr);
  }
  return *this;
}

DeviceTable::~DeviceTable() = default;  // unmaps; the name stays until unlink()

void DeviceTable::unlink() noexcept {
  if (mapping_) bip::shared_memory_object::remove(mapping_->name.c_str());
}

std::uint32_t DeviceTable::capacity() const noexcept { return layout_->capacity; }
std::uint32_t DeviceTable::workers() const noexcept { return layout_->workers; }
pid_t DeviceTable::master_pid() const noexcept { return static_cast<pid_t>(layout_->master_pid); }

bool DeviceTable::master_running() const noexcept {
  return master_alive(layout_->master_pid, layout_->master_start);
}

// --- holders ---

ClaimResult DeviceTable::claim(DeviceId id, const Holder& me, const PeerAddress& peer,
                               std::int64_t since_unix) noexcept {
  check_me(me, *layout_);
  Entry* e = find_or_insert(*layout_, id);
  if (e == nullptr) return ClaimResult{.status = ClaimStatus::table_full};
  return claim_entry(*e, pack(me), peer, since_unix);
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
      return result;
    }
  } else {
    current = e->holder.load(std::memory_order_acquire);
  }
  if (current != 0) return held_by(*e, current);
  return claim_entry(*e, pack(me), peer, since_unix);  // freed meanwhile
}

bool DeviceTable::release(DeviceId id, const Holder& me) noexcept {
  if (!valid(me, *layout_)) return false;
  Entry* e = lookup(*layout_, id);
  if (e == nullptr) return false;
  std::uint64_t expected = pack(me);
  return e->holder.compare_exchange_strong(expected, 0, std::memory_order_acq_rel,
                                           std::memory_order_relaxed);
}

bool DeviceTable::holds(DeviceId id, const Holder& me) const noexcept {
  if (!valid(me, *layout_)) return false;
  const Entry* e = lookup(*layout_, id);
  return e != nullptr && e->holder.load(std::memory_order_acquire) == pack(me);
}

std::optional<Holder> DeviceTable::holder(DeviceId id) const noexcept {
  const Entry* e = lookup(*layout_, id);
  if (e == nullptr) return std::nullopt;
  const std::uint64_t word = e->holder.load(std::memory_order_acquire);
  if (word == 0) return std::nullopt;
  return unpack(word);
}

void DeviceTable::raise_replay_mark(DeviceId id, protocol::Time t) noexcept {
  if (Entry* e = find_or_insert(*layout_, id)) raise(e->replay_mark, ticks(t));
}

void DeviceTable::raise_push_mark(DeviceId id, protocol::Time t) noexcept {
  if (Entry* e = find_or_insert(*layout_, id)) raise(e->push_mark, ticks(t));
}

// --- devices show ---

void DeviceTable::set_skew(DeviceId id, const ClockSkew& skew) noexcept {
  if (Entry* e = lookup(*layout_, id)) e->skew.store(pack_skew(skew), std::memory_order_relaxed);
}

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
