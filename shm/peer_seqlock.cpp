// The per-entry seqlock of a device's peer and login time (design: README.md "The peer
// seqlock"): a writer never waits for another process, a reader never sees a torn copy.
#include <sched.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>

#include "shm/layout.hpp"

namespace iotsocket::shm::detail {
namespace {

void cpu_relax() noexcept {
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

}  // namespace

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

}  // namespace iotsocket::shm::detail
