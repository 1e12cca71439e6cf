// DeviceTable with real shared memory and real processes: forked claimers racing for one
// device, workers SIGKILLed in the middle of their claims, stale and live segments.
// Children report through their exit code only (gtest assertions do not cross fork()).
#include "shm/device_table.hpp"
#include "shm/refusal.hpp"
#include "shm/worker_counters.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <new>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace iotsocket::shm::test {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using protocol::Tick;
using protocol::Time;

std::string unique_name() {
  static int counter = 0;
  return "iotsocket-test-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
}

Time at(std::int64_t ticks) { return Time{Tick{ticks}}; }
std::int64_t ticks(Time t) { return t.time_since_epoch().count(); }

PeerAddress ipv4(const char* address, std::uint16_t port) {
  PeerAddress peer;
  auto* in = reinterpret_cast<sockaddr_in*>(&peer.storage);
  in->sin_family = AF_INET;
  in->sin_port = htons(port);
  ::inet_pton(AF_INET, address, &in->sin_addr);
  peer.length = sizeof(sockaddr_in);
  return peer;
}

PeerAddress ipv6(const char* address, std::uint16_t port) {
  PeerAddress peer;
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&peer.storage);
  in6->sin6_family = AF_INET6;
  in6->sin6_port = htons(port);
  ::inet_pton(AF_INET6, address, &in6->sin6_addr);
  peer.length = sizeof(sockaddr_in6);
  return peer;
}

// A peer and a login time that both follow from one 48-bit number, so that a reader can
// tell a torn copy (peer of one claim, time of another) from a whole one.
PeerAddress peer_of(std::uint64_t x) {
  PeerAddress peer;
  auto* in = reinterpret_cast<sockaddr_in*>(&peer.storage);
  in->sin_family = AF_INET;
  in->sin_port = htons(static_cast<std::uint16_t>(x & 0xffff));
  in->sin_addr.s_addr = htonl(static_cast<std::uint32_t>(x >> 16));
  peer.length = sizeof(sockaddr_in);
  return peer;
}
std::int64_t since_of(std::uint64_t x) { return static_cast<std::int64_t>(x); }
// Whether the snapshot's peer and since come from one claim.
bool whole(const DeviceSnapshot& s) {
  const auto* in = reinterpret_cast<const sockaddr_in*>(&s.peer.storage);
  if (s.peer.length != sizeof(sockaddr_in) || in->sin_family != AF_INET) return false;
  const std::uint64_t x = (std::uint64_t{ntohl(in->sin_addr.s_addr)} << 16) | ntohs(in->sin_port);
  return since_of(x) == s.since_unix;
}

// Memory shared with forked children (MAP_SHARED | MAP_ANONYMOUS), holding one T.
template <class T>
class SharedBlock {
 public:
  SharedBlock() {
    void* p = ::mmap(nullptr, sizeof(T), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    value_ = new (p) T{};
  }
  ~SharedBlock() {
    value_->~T();
    ::munmap(value_, sizeof(T));
  }
  SharedBlock(const SharedBlock&) = delete;
  SharedBlock& operator=(const SharedBlock&) = delete;
  T& operator*() { return *value_; }
  T* operator->() { return value_; }

 private:
  T* value_ = nullptr;
};

// A child process running `body`; its exit code is body's result (99 on an exception).
// Killed and reaped on destruction if still there.
class Child {
 public:
  explicit Child(const std::function<int()>& body) {
    std::fflush(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // never outlive a test binary that died
      int code = 99;
      try {
        code = body();
      } catch (...) {
      }
      ::_exit(code);
    }
  }
  ~Child() {
    if (pid_ > 0 && !reaped_) kill_and_reap();
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  pid_t pid() const { return pid_; }
  // The raw wait status (blocking).
  int reap() {
    int status = 0;
    ::waitpid(pid_, &status, 0);
    reaped_ = true;
    return status;
  }
  // The exit code, or nullopt when it is still running at the deadline or was killed.
  std::optional<int> wait(Clock::time_point deadline) {
    for (;;) {
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        reaped_ = true;
        if (WIFEXITED(status)) return WEXITSTATUS(status);
        return std::nullopt;
      }
      if (Clock::now() > deadline) return std::nullopt;
      std::this_thread::sleep_for(1ms);
    }
  }
  // Whether it ended on its own (exit or signal) without reaping it.
  std::optional<int> poll_exit() {
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) != pid_) return std::nullopt;
    reaped_ = true;
    return status;
  }
  int kill_and_reap() {
    ::kill(pid_, SIGKILL);
    return reap();
  }

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
};

// A pipe a child writes one byte to when it is ready.
class ReadySignal {
 public:
  ReadySignal() {
    if (::pipe(fds_) != 0) throw std::runtime_error("pipe");
  }
  ~ReadySignal() {
    ::close(fds_[0]);
    ::close(fds_[1]);
  }
  ReadySignal(const ReadySignal&) = delete;
  ReadySignal& operator=(const ReadySignal&) = delete;
  void notify(char c) { (void)!::write(fds_[1], &c, 1); }
  // The byte the child wrote; 0 on EOF.
  char wait() {
    char c = 0;
    ::close(fds_[1]);
    fds_[1] = -1;
    return ::read(fds_[0], &c, 1) == 1 ? c : '\0';
  }

 private:
  int fds_[2] = {-1, -1};
};

// Sleeps in a child until killed, at most `limit`.
int sleep_until_killed(std::chrono::seconds limit) {
  const auto deadline = Clock::now() + limit;
  while (Clock::now() < deadline) std::this_thread::sleep_for(10ms);
  return 0;
}

// A segment name per test, removed at the end whatever happens.
class DeviceTableTest : public ::testing::Test {
 protected:
  void TearDown() override { ::shm_unlink(("/" + name_).c_str()); }

  void open(std::uint32_t capacity, std::uint32_t workers) {
    auto created = DeviceTable::create(name_, capacity, workers);
    ASSERT_TRUE(created.has_value()) << created.error();
    table_.emplace(std::move(*created));
  }
  DeviceTable& table() { return *table_; }

  std::string name_ = unique_name();
  std::optional<DeviceTable> table_;
};

const PeerAddress kPeer = ipv4("203.0.113.7", 51234);
constexpr DeviceId kDevice{1234567890};

// --- holders ---

TEST_F(DeviceTableTest, ClaimReleaseHoldsHolder) {
  ASSERT_NO_FATAL_FAILURE(open(16, 4));
  auto& t = table();
  EXPECT_EQ(t.capacity(), 16U);
  EXPECT_EQ(t.workers(), 4U);
  EXPECT_EQ(t.master_pid(), ::getpid());

  const Holder a{.worker = 0, .slot = 7, .conn_generation = 1};
  const Holder b{.worker = 3, .slot = 2, .conn_generation = 9};
  EXPECT_FALSE(t.holder(kDevice));

  ClaimResult first = t.claim(kDevice, a, kPeer, 1700000000);
  ASSERT_EQ(first.status, ClaimStatus::claimed);
  EXPECT_EQ(first.replay_mark, Time{});
  EXPECT_EQ(first.push_mark, Time{});
  EXPECT_TRUE(first.lease.holds());
  EXPECT_EQ(t.holder(kDevice), a);

  ClaimResult second = t.claim(kDevice, b, kPeer, 1700000001);
  EXPECT_EQ(second.status, ClaimStatus::held);
  EXPECT_EQ(second.previous, a);
  EXPECT_EQ(t.holder(kDevice), a);
  // The same holder again is held too (by itself): a claim is not re-entrant.
  ClaimResult again = t.claim(kDevice, a, kPeer, 1);
  EXPECT_EQ(again.status, ClaimStatus::held);

  // Only the holder's lease releases: a refused claim, the same slot of a newer connection
  // included, gets none to release with.
  ClaimResult newer = t.claim(kDevice, Holder{.worker = 0, .slot = 7, .conn_generation = 2}, kPeer, 1);
  EXPECT_EQ(newer.status, ClaimStatus::held);
  for (ClaimResult* refused : {&second, &again, &newer}) EXPECT_FALSE(refused->lease.release());
  EXPECT_EQ(t.holder(kDevice), a);

  Lease lease = first.lease;
  EXPECT_TRUE(lease.release());
  EXPECT_FALSE(t.holder(kDevice));
  EXPECT_FALSE(first.lease.holds());  // a copy sees the release: the hold is in the table
  EXPECT_FALSE(first.lease.release());

  EXPECT_EQ(t.claim(kDevice, b, kPeer, 1700000002).status, ClaimStatus::claimed);
  EXPECT_EQ(t.holder(kDevice), b);
}

// --- leases: what a connection does per frame, on its own entry ---

TEST_F(DeviceTableTest, ALeaseHoldsAcceptsFramesAndReleases) {
  ASSERT_NO_FATAL_FAILURE(open(16, 2));
  auto& t = table();
  const Holder a{.worker = 1, .slot = 3, .conn_generation = 7};
  ClaimResult claim = t.claim(kDevice, a, kPeer, 1700000000);
  ASSERT_EQ(claim.status, ClaimStatus::claimed);
  Lease lease = claim.lease;
  ASSERT_TRUE(lease);
  EXPECT_EQ(lease.holder(), a);
  EXPECT_TRUE(lease.holds());

  // One accepted frame: the mark rises and the skew shows, in one call.
  const ClockSkew skew{.last_ms = -12, .largest_ms = 40};
  EXPECT_TRUE(lease.accept(at(5000), skew));
  EXPECT_EQ(t.find(kDevice)->skew, skew);
  EXPECT_TRUE(lease.accept(at(4000), skew));  // a lower TIME: still ours...
  lease.raise_push_mark(at(6000));
  const ClaimResult other = t.claim(kDevice, Holder{.worker = 0, .slot = 1, .conn_generation = 1}, kPeer, 1);
  ASSERT_EQ(other.status, ClaimStatus::held);
  EXPECT_EQ(ticks(other.replay_mark), 5000);  // ...and the mark did not fall
  EXPECT_EQ(ticks(other.push_mark), 6000);
  EXPECT_FALSE(other.lease);

  EXPECT_TRUE(lease.release());
  EXPECT_FALSE(lease);
  EXPECT_FALSE(lease.holds());
  EXPECT_FALSE(t.holder(kDevice));
  EXPECT_FALSE(lease.release());  // once
  EXPECT_FALSE(claim.lease.release());  // a copy of a released lease: the hold is gone

  claim = t.claim(kDevice, a, kPeer, 1700000001);
  ASSERT_EQ(claim.status, ClaimStatus::claimed);
  EXPECT_EQ(ticks(claim.replay_mark), 5000);  // marks stay with the device
  EXPECT_EQ(ticks(claim.push_mark), 6000);
}

TEST_F(DeviceTableTest, AReplacedLeaseStopsHoldingAndReleasesNothing) {
  ASSERT_NO_FATAL_FAILURE(open(16, 2));
  auto& t = table();
  const Holder a{.worker = 0, .slot = 4, .conn_generation = 1};
  const Holder b{.worker = 1, .slot = 4, .conn_generation = 1};
  Lease old = t.claim(kDevice, a, kPeer, 1).lease;
  ASSERT_TRUE(old.holds());
  const ClaimResult taken = t.take_over(kDevice, a, b, kPeer, 2);
  ASSERT_EQ(taken.status, ClaimStatus::claimed);
  Lease now = taken.lease;
  EXPECT_EQ(now.holder(), b);
  EXPECT_TRUE(now.holds());

  EXPECT_FALSE(old.holds());
  // A frame the old connection accepted a moment before it noticed: the mark still rises
  // (the frame went on), and accept() says the device is no longer ours.
  EXPECT_FALSE(old.accept(at(900), ClockSkew{}));
  EXPECT_FALSE(old.release());
  EXPECT_EQ(t.holder(kDevice), b);
  EXPECT_TRUE(now.holds());

  // The same slot again with a new generation is another connection: the old lease of that
  // slot does not hold it.
  ASSERT_TRUE(now.release());
  const Holder a2{.worker = 0, .slot = 4, .conn_generation = 2};
  ASSERT_EQ(t.claim(kDevice, a2, kPeer, 3).status, ClaimStatus::claimed);
  EXPECT_FALSE(old.holds());
  EXPECT_FALSE(old.release());
  EXPECT_EQ(t.holder(kDevice), a2);
}

TEST_F(DeviceTableTest, ALeaseOfADeadWorkersDeviceStopsHolding) {
  ASSERT_NO_FATAL_FAILURE(open(16, 2));
  auto& t = table();
  const Holder a{.worker = 1, .slot = 9, .conn_generation = 3};
  Lease lease = t.claim(kDevice, a, kPeer, 1).lease;
  ASSERT_TRUE(lease.holds());
  EXPECT_EQ(t.release_worker(1, at(777)), 1U);
  EXPECT_FALSE(lease.holds());
  EXPECT_FALSE(lease.release());
  EXPECT_EQ(ticks(t.claim(kDevice, a, kPeer, 2).replay_mark), 777);
}

TEST_F(DeviceTableTest, OnlyAClaimedResultCarriesALease) {
  ASSERT_NO_FATAL_FAILURE(open(1, 2));
  auto& t = table();
  const Holder a{.worker = 0, .slot = 1, .conn_generation = 1};
  const Holder b{.worker = 1, .slot = 1, .conn_generation = 1};
  EXPECT_TRUE(t.claim(kDevice, a, kPeer, 1).lease);
  EXPECT_FALSE(t.claim(kDevice, b, kPeer, 1).lease);                 // held
  EXPECT_FALSE(t.take_over(kDevice, b, b, kPeer, 1).lease);          // held by a, not b
  EXPECT_FALSE(t.claim(DeviceId{kDevice.value + 1}, b, kPeer, 1).lease);  // table full
  EXPECT_FALSE(Lease{}.holds());
  Lease none;
  EXPECT_FALSE(none.accept(at(1), ClockSkew{}));
  EXPECT_FALSE(none.release());
}

TEST_F(DeviceTableTest, HolderFieldsKeepTheirFullRange) {
  ASSERT_NO_FATAL_FAILURE(open(16, 4095));
  auto& t = table();
  const Holder edges[] = {
      {.worker = 0, .slot = 0, .conn_generation = 0},
      {.worker = 4094, .slot = (1U << 24) - 1, .conn_generation = (1U << 28) - 1},
      {.worker = 1234, .slot = 0xABCDEF, .conn_generation = 0x0FEDCBA},
  };
  std::uint64_t id = 100;
  for (const Holder& h : edges) {
    SCOPED_TRACE(::testing::Message() << h.worker << "/" << h.slot << "/" << h.conn_generation);
    const ClaimResult r = t.claim(DeviceId{id}, h, kPeer, 1);
    ASSERT_EQ(r.status, ClaimStatus::claimed);
    EXPECT_EQ(t.holder(DeviceId{id}), h);
    EXPECT_EQ(r.lease.holder(), h);
    EXPECT_TRUE(r.lease.holds());
    ++id;
  }
  // Only the low 28 bits of the generation are kept.
  const Holder wide{.worker = 5, .slot = 6, .conn_generation = (1U << 28) + 5};
  const ClaimResult r = t.claim(DeviceId{id}, wide, kPeer, 1);
  ASSERT_EQ(r.status, ClaimStatus::claimed);
  EXPECT_EQ(t.holder(DeviceId{id}), (Holder{.worker = 5, .slot = 6, .conn_generation = 5}));
  EXPECT_EQ(r.lease.holder(), (Holder{.worker = 5, .slot = 6, .conn_generation = 5}));
  EXPECT_TRUE(r.lease.holds());
  EXPECT_EQ(t.release_worker(4094, Time{}), 1U);
  EXPECT_EQ(t.release_worker(4095, Time{}), 0U);  // no such worker
  EXPECT_FALSE(t.holder(DeviceId{101}));
  EXPECT_TRUE(t.holder(DeviceId{100}));
}

TEST_F(DeviceTableTest, ClaimByAWorkerOutsideTheTableAborts) {
  ASSERT_NO_FATAL_FAILURE(open(16, 2));
  EXPECT_DEATH(table().claim(kDevice, Holder{.worker = 2}, kPeer, 1), "");
  EXPECT_DEATH(table().claim(kDevice, Holder{.worker = 0, .slot = 1U << 24}, kPeer, 1), "");
  EXPECT_DEATH(table().counters(2), "");
  // Named as the previous holder it is no error: nothing holds as such a holder.
  EXPECT_EQ(table().take_over(kDevice, Holder{.worker = 2}, Holder{.worker = 1}, kPeer, 1).status,
            ClaimStatus::claimed);
  EXPECT_EQ(table().holder(kDevice), Holder{.worker = 1});
}

TEST_F(DeviceTableTest, MarksOnlyRiseAndSurviveReleaseAndClaim) {
  ASSERT_NO_FATAL_FAILURE(open(16, 2));
  auto& t = table();
  const Holder a{.worker = 0, .slot = 1, .conn_generation = 1};
  const Holder b{.worker = 1, .slot = 1, .conn_generation = 1};
  ClaimResult r = t.claim(kDevice, a, kPeer, 1);
  ASSERT_EQ(r.status, ClaimStatus::claimed);
  r.lease.raise_replay_mark(at(500));
  r.lease.raise_replay_mark(at(300));
  r.lease.raise_push_mark(at(700));
  r.lease.raise_push_mark(at(10));
  ASSERT_TRUE(r.lease.release());

  r = t.claim(kDevice, b, kPeer, 2);
  ASSERT_EQ(r.status, ClaimStatus::claimed);
  EXPECT_EQ(r.replay_mark, at(500));
  EXPECT_EQ(r.push_mark, at(700));
  r.lease.raise_replay_mark(at(900));
  r.lease.raise_push_mark(at(701));
  ASSERT_TRUE(r.lease.release());

  r = t.claim(kDevice, a, kPeer, 3);
  ASSERT_EQ(r.status, ClaimStatus::claimed);
  EXPECT_EQ(r.replay_mark, at(900));
  EXPECT_EQ(r.push_mark, at(701));

  // A dead worker's floor raises the mark of what it held, never lowers it.
  EXPECT_EQ(t.release_worker(0, at(800)), 1U);
  r = t.claim(kDevice, b, kPeer, 4);
  EXPECT_EQ(r.replay_mark, at(900));
  EXPECT_EQ(t.release_worker(1, at(5000)), 1U);
  r = t.claim(kDevice, a, kPeer, 5);
  EXPECT_EQ(r.replay_mark, at(5000));
  EXPECT_EQ(r.push_mark, at(701));

  // Each mark is its own: a device that was only written to keeps no replay mark.
  const DeviceId other{77};
  r = t.claim(other, b, kPeer, 6);
  ASSERT_EQ(r.status, ClaimStatus::claimed);
  r.lease.raise_push_mark(at(123));
  ASSERT_TRUE(r.lease.release());
  r = t.claim(other, b, kPeer, 7);
  ASSERT_EQ(r.status, ClaimStatus::claimed);
  EXPECT_EQ(r.push_mark, at(123));
  EXPECT_EQ(r.replay_mark, Time{});
}

TEST_F(DeviceTableTest, TakeOverMovesAHeldDevice) {
  ASSERT_NO_FATAL_FAILURE(open(16, 3));
  auto& t = table();
  const Holder a{.worker = 0, .slot = 1, .conn_generation = 1};
  const Holder b{.worker = 1, .slot = 2, .conn_generation = 2};
  const Holder c{.worker = 2, .slot = 3, .conn_generation = 3};
  Lease of_a = t.claim(kDevice, a, kPeer, 1).lease;
  ASSERT_TRUE(of_a);
  of_a.raise_replay_mark(at(42));
  of_a.raise_push_mark(at(43));

  ClaimResult r = t.take_over(kDevice, a, b, kPeer, 2);
  ASSERT_EQ(r.status, ClaimStatus::claimed);
  EXPECT_EQ(r.previous, a);
  EXPECT_EQ(r.replay_mark, at(42));
  EXPECT_EQ(r.push_mark, at(43));
  Lease of_b = r.lease;
  EXPECT_TRUE(of_b.holds());
  EXPECT_FALSE(of_a.holds());  // how the replaced connection learns it
  EXPECT_FALSE(of_a.release());
  EXPECT_EQ(t.holder(kDevice), b);

  // `previous` no longer holds it: held, naming the one that does.
  r = t.take_over(kDevice, a, c, kPeer, 3);
  EXPECT_EQ(r.status, ClaimStatus::held);
  EXPECT_EQ(r.previous, b);
  EXPECT_EQ(t.holder(kDevice), b);

  // Free meanwhile: a plain claim.
  ASSERT_TRUE(of_b.release());
  r = t.take_over(kDevice, a, c, kPeer, 4);
  EXPECT_EQ(r.status, ClaimStatus::claimed);
  EXPECT_EQ(t.holder(kDevice), c);

  // A device never seen: claimed too.
  r = t.take_over(DeviceId{5}, a, c, kPeer, 5);
  EXPECT_EQ(r.status, ClaimStatus::claimed);
  EXPECT_EQ(t.holder(DeviceId{5}), c);
}

TEST_F(DeviceTableTest, CapacityDevicesFitAndNoMore) {
  constexpr std::uint32_t kCapacity = 8;
  ASSERT_NO_FATAL_FAILURE(open(kCapacity, 2));
  auto& t = table();
  const Holder a{.worker = 0, .slot = 1, .conn_generation = 1};
  Lease first;
  for (std::uint64_t id = 1; id <= kCapacity; ++id) {
    const ClaimResult r = t.claim(DeviceId{id * 1000003}, a, kPeer, 1);
    ASSERT_EQ(r.status, ClaimStatus::claimed) << id;
    if (id == 1) first = r.lease;
  }
  const DeviceId extra{999};
  EXPECT_EQ(t.claim(extra, a, kPeer, 1).status, ClaimStatus::table_full);
  EXPECT_EQ(t.take_over(extra, a, a, kPeer, 1).status, ClaimStatus::table_full);
  EXPECT_FALSE(t.holder(extra));
  const std::uint64_t epoch = t.close_epoch();
  t.request_close(extra);
  EXPECT_EQ(t.close_epoch(), epoch);

  // Entries stay with their device: a release makes no room for another device, and the
  // devices already in keep working.
  ASSERT_TRUE(first.release());
  EXPECT_EQ(t.claim(extra, a, kPeer, 1).status, ClaimStatus::table_full);
  EXPECT_EQ(t.claim(DeviceId{1000003}, a, kPeer, 1).status, ClaimStatus::claimed);
  EXPECT_EQ(t.connected().size(), kCapacity);
}

TEST_F(DeviceTableTest, CreateChecksItsArguments) {
  auto zero = DeviceTable::create(name_, 0, 1);
  ASSERT_FALSE(zero.has_value());
  EXPECT_NE(zero.error().find("/" + name_), std::string::npos) << zero.error();
  EXPECT_NE(zero.error().find("capacity"), std::string::npos) << zero.error();
  auto no_workers = DeviceTable::create(name_, 1, 0);
  ASSERT_FALSE(no_workers.has_value());
  EXPECT_NE(no_workers.error().find("workers"), std::string::npos) << no_workers.error();
  EXPECT_FALSE(DeviceTable::create(name_, 1, 4096).has_value());
  EXPECT_TRUE(DeviceTable::create(name_, 1, 4095).has_value());
}

// --- segments ---

TEST_F(DeviceTableTest, AttachOfAMissingSegmentSaysWhatToCheck) {
  auto attached = DeviceTable::attach(name_);
  ASSERT_FALSE(attached.has_value());
  EXPECT_EQ(attached.error(),
            "no shared memory segment /" + name_ + ": is iotsocketd running (runtime.shm_name)?");
}

TEST_F(DeviceTableTest, AttachSharesTheTableAcrossProcesses) {
  ASSERT_NO_FATAL_FAILURE(open(16, 2));
  const Holder a{.worker = 1, .slot = 9, .conn_generation = 4};
  Child child([&] {
    auto t = DeviceTable::attach(name_);
    if (!t) return 1;
    if (t->master_pid() == ::getpid() || t->capacity() != 16 || t->workers() != 2) return 2;
    Lease lease = t->claim(kDevice, a, kPeer, 17).lease;
    if (!lease) return 3;
    lease.raise_replay_mark(at(99));
    t->counters(1).frames_in.fetch_add(5, std::memory_order_relaxed);
    return 0;
  });
  EXPECT_EQ(child.wait(Clock::now() + 30s), 0);
  EXPECT_EQ(table().holder(kDevice), a);
  EXPECT_EQ(table().counters(1).frames_in.load(), 5U);
  EXPECT_EQ(table().counters(0).frames_in.load(), 0U);
  // The child's lease went with it: the master frees what a dead worker held.
  ASSERT_EQ(table().release_worker(1, Time{}), 1U);
  EXPECT_EQ(table().claim(kDevice, a, kPeer, 18).replay_mark, at(99));
}

// Each worker's counters are its own cache lines, apart from the others' and from the
// entries: a write to the last close reason of one worker shows nowhere else.
TEST_F(DeviceTableTest, WorkerCountersDoNotOverlapAndClearGaugesKeepsCounts) {
  ASSERT_NO_FATAL_FAILURE(open(16, 3));
  for (std::uint32_t w = 0; w < 3; ++w) {
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(&table().counters(w)) % 64, 0U) << w;
  }
  EXPECT_GE(reinterpret_cast<const std::byte*>(&table().counters(1)),
            reinterpret_cast<const std::byte*>(&table().counters(0)) + sizeof(WorkerCounters));
  WorkerCounters& middle = table().counters(1);
  middle.count_close("no_such_reason");  // the last slot: "other"
  middle.count_close("wrong_key");
  WorkerCounters::add(middle.connections, 3);
  WorkerCounters::add(middle.logins, 2);
  EXPECT_EQ(WorkerCounters::get(table().counters(1).closes[kCloseReasonCount - 1]), 1U);
  EXPECT_EQ(WorkerCounters::get(table().counters(1).closes[close_reason_index("wrong_key")]), 1U);
  EXPECT_EQ(WorkerCounters::get(table().counters(2).connections), 0U);
  EXPECT_EQ(WorkerCounters::get(table().counters(0).closes[kCloseReasonCount - 1]), 0U);
  ASSERT_TRUE(table().claim(kDevice, Holder{.worker = 2}, kPeer, 1).status == ClaimStatus::claimed);
  EXPECT_EQ(table().holder(kDevice), (Holder{.worker = 2}));
  // A dead worker: what is open goes to zero, what was counted stays.
  middle.clear_gauges();
  EXPECT_EQ(WorkerCounters::get(middle.connections), 0U);
  EXPECT_EQ(WorkerCounters::get(middle.logins), 2U);
  EXPECT_EQ(WorkerCounters::get(middle.closes[close_reason_index("wrong_key")]), 1U);
}

TEST_F(DeviceTableTest, UnlinkRemovesTheNameNotTheMapping) {
  ASSERT_NO_FATAL_FAILURE(open(16, 2));
  table().unlink();
  EXPECT_FALSE(DeviceTable::attach(name_).has_value());
  EXPECT_EQ(table().claim(kDevice, Holder{}, kPeer, 1).status, ClaimStatus::claimed);
  EXPECT_TRUE(table().holder(kDevice));
  // Moved, the mapping stays valid.
  DeviceTable moved = std::move(*table_);
  EXPECT_EQ(moved.holder(kDevice), Holder{});
}

// A child that creates the segment (as a master), claims a device, reports, then
// `after` (exits, or sleeps until killed).
int run_master(const std::string& name, ReadySignal& ready, bool sleep_after) {
  auto t = DeviceTable::create(name, 16, 2);
  if (!t) {
    ready.notify('E');
    return 1;
  }
  Lease lease = t->claim(kDevice, Holder{.worker = 1}, kPeer, 5).lease;
  if (!lease) return 2;
  lease.raise_replay_mark(at(1000));
  ready.notify('R');
  return sleep_after ? sleep_until_killed(60s) : 0;
}

// The segment is a fresh one of this process: empty, with our pid.
void expect_fresh(DeviceTable& t) {
  EXPECT_EQ(t.master_pid(), ::getpid());
  EXPECT_FALSE(t.holder(kDevice));
  EXPECT_TRUE(t.connected().empty());
  const ClaimResult r = t.claim(kDevice, Holder{.worker = 0}, kPeer, 1);
  EXPECT_EQ(r.status, ClaimStatus::claimed);
  EXPECT_EQ(r.replay_mark, Time{});  // not the old segment's 1000
}

TEST_F(DeviceTableTest, CreateReplacesTheSegmentOfAMasterThatExited) {
  ReadySignal ready;
  Child master([&] { return run_master(name_, ready, false); });
  ASSERT_EQ(ready.wait(), 'R');
  ASSERT_EQ(master.wait(Clock::now() + 30s), 0);
  {
    auto old = DeviceTable::attach(name_);  // still there: nobody unlinked it
    ASSERT_TRUE(old.has_value()) << old.error();
    EXPECT_EQ(old->master_pid(), master.pid());
    EXPECT_EQ(old->holder(kDevice), Holder{.worker = 1});
  }
  ASSERT_NO_FATAL_FAILURE(open(16, 2));
  expect_fresh(table());
}

TEST_F(DeviceTableTest, CreateReplacesTheSegmentOfAKilledMaster) {
  ReadySignal ready;
  Child master([&] { return run_master(name_, ready, true); });
  ASSERT_EQ(ready.wait(), 'R');
  const int status = master.kill_and_reap();
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  ASSERT_NO_FATAL_FAILURE(open(16, 2));
  expect_fresh(table());
}

TEST_F(DeviceTableTest, CreateReplacesTheSegmentOfAZombieMaster) {
  ReadySignal ready;
  Child master([&] { return run_master(name_, ready, false); });
  ASSERT_EQ(ready.wait(), 'R');
  siginfo_t info{};
  ASSERT_EQ(::waitid(P_PID, static_cast<id_t>(master.pid()), &info, WEXITED | WNOWAIT), 0);
  ASSERT_EQ(::kill(master.pid(), 0), 0);  // a zombie: kill() alone would call it alive
  ASSERT_NO_FATAL_FAILURE(open(16, 2));
  expect_fresh(table());
  EXPECT_EQ(master.wait(Clock::now() + 30s), 0);
}

TEST_F(DeviceTableTest, CreateRefusesTheSegmentOfALiveMaster) {
  ReadySignal ready;
  Child master([&] { return run_master(name_, ready, true); });
  ASSERT_EQ(ready.wait(), 'R');

  auto second = DeviceTable::create(name_, 16, 2);
  ASSERT_FALSE(second.has_value());
  EXPECT_EQ(second.error(), "shared memory segment /" + name_ + " is in use by iotsocketd pid " +
                                std::to_string(master.pid()) +
                                " (another server with the same runtime.shm_name?)");
  // The live server's table is untouched.
  auto attached = DeviceTable::attach(name_);
  ASSERT_TRUE(attached.has_value()) << attached.error();
  EXPECT_EQ(attached->master_pid(), master.pid());
  EXPECT_EQ(attached->holder(kDevice), Holder{.worker = 1});

  master.kill_and_reap();
  ASSERT_NO_FATAL_FAILURE(open(16, 2));
  expect_fresh(table());
}

TEST_F(DeviceTableTest, ForeignSegmentsAreNotAttachedButReplaced) {
  const std::string path = "/" + name_;
  for (const std::size_t size : {std::size_t{0}, std::size_t{8192}}) {
    SCOPED_TRACE(size);
    const int fd = ::shm_open(path.c_str(), O_RDWR | O_CREAT | O_TRUNC, 0600);
    ASSERT_GE(fd, 0);
    const std::vector<char> junk(size, '\xAB');
    ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(size)), 0);
    if (size > 0) {
      ASSERT_EQ(::write(fd, junk.data(), size), static_cast<ssize_t>(size));
    }
    ::close(fd);

    auto attached = DeviceTable::attach(name_);
    ASSERT_FALSE(attached.has_value());
    EXPECT_NE(attached.error().find("shared memory segment " + path + " is not an iotsocketd device table"),
              std::string::npos)
        << attached.error();
    ASSERT_NO_FATAL_FAILURE(open(16, 2));
    expect_fresh(table());
    table_.reset();
    ::shm_unlink(path.c_str());
  }
}

// --- revocation and reading ---

TEST_F(DeviceTableTest, CloseRequestsReachTheHolderOnce) {
  ASSERT_NO_FATAL_FAILURE(open(16, 2));
  auto& t = table();
  const Holder a{.worker = 0, .slot = 1, .conn_generation = 1};
  const Holder b{.worker = 1, .slot = 1, .conn_generation = 1};
  const std::uint64_t epoch = t.close_epoch();

  t.request_close(kDevice);  // never connected: nothing to close, no wake-up
  EXPECT_EQ(t.close_epoch(), epoch);
  EXPECT_FALSE(t.take_close_request(kDevice));

  Lease of_a = t.claim(kDevice, a, kPeer, 1).lease;
  ASSERT_TRUE(of_a);
  EXPECT_FALSE(t.take_close_request(kDevice));
  t.request_close(kDevice);
  EXPECT_EQ(t.close_epoch(), epoch + 1);
  EXPECT_TRUE(t.take_close_request(kDevice));
  EXPECT_FALSE(t.take_close_request(kDevice));

  t.request_close(kDevice);
  t.request_close(kDevice);
  EXPECT_EQ(t.close_epoch(), epoch + 3);
  EXPECT_TRUE(t.take_close_request(kDevice));
  EXPECT_FALSE(t.take_close_request(kDevice));

  // A request the old connection never took does not close the next one.
  t.request_close(kDevice);
  ASSERT_TRUE(of_a.release());
  ASSERT_EQ(t.claim(kDevice, b, kPeer, 2).status, ClaimStatus::claimed);
  EXPECT_FALSE(t.take_close_request(kDevice));
  t.request_close(kDevice);
  ASSERT_EQ(t.take_over(kDevice, b, a, kPeer, 3).status, ClaimStatus::claimed);
  EXPECT_FALSE(t.take_close_request(kDevice));

  // iotsocketctl asks from another process.
  const std::uint64_t before = t.close_epoch();
  Child ctl([&] {
    auto attached = DeviceTable::attach(name_);
    if (!attached) return 1;
    attached->request_close(kDevice);
    return 0;
  });
  ASSERT_EQ(ctl.wait(Clock::now() + 30s), 0);
  EXPECT_EQ(t.close_epoch(), before + 1);
  EXPECT_TRUE(t.take_close_request(kDevice));
}

TEST_F(DeviceTableTest, ConnectedShowsHeldDevicesWithPeerAndSince) {
  ASSERT_NO_FATAL_FAILURE(open(16, 4));
  auto& t = table();
  const Holder a{.worker = 0, .slot = 1, .conn_generation = 1};
  const Holder b{.worker = 3, .slot = 77, .conn_generation = 5};
  EXPECT_TRUE(t.connected().empty());
  ASSERT_EQ(t.claim(DeviceId{1}, a, ipv4("203.0.113.7", 51234), 1700000000).status,
            ClaimStatus::claimed);
  ASSERT_EQ(t.claim(DeviceId{9999999999}, b, ipv6("2001:db8::1", 443), 1700000001).status,
            ClaimStatus::claimed);
  ASSERT_TRUE(t.claim(DeviceId{3}, a, kPeer, 1700000002).lease.release());

  auto list = t.connected();
  std::sort(list.begin(), list.end(), [](auto& x, auto& y) { return x.id < y.id; });
  ASSERT_EQ(list.size(), 2U);
  EXPECT_EQ(list[0].id, DeviceId{1});
  EXPECT_EQ(list[0].holder, a);
  EXPECT_EQ(list[0].peer.to_string(), "203.0.113.7:51234");
  EXPECT_EQ(list[0].since_unix, 1700000000);
  EXPECT_EQ(list[1].id, DeviceId{9999999999});
  EXPECT_EQ(list[1].holder, b);
  EXPECT_EQ(list[1].peer.to_string(), "[2001:db8::1]:443");
  EXPECT_EQ(list[1].peer.length, sizeof(sockaddr_in6));
  EXPECT_EQ(list[1].since_unix, 1700000001);

  // One device alone: find(), for the log line about a duplicate login.
  const auto one = t.find(DeviceId{9999999999});
  ASSERT_TRUE(one.has_value());
  EXPECT_EQ(one->holder, b);
  EXPECT_EQ(one->peer.to_string(), "[2001:db8::1]:443");
  EXPECT_EQ(one->since_unix, 1700000001);
  EXPECT_FALSE(t.find(DeviceId{3}));   // in the table, free
  EXPECT_FALSE(t.find(DeviceId{42}));  // never seen

  // A take-over shows the new connection's peer.
  const Holder c{.worker = 2, .slot = 4, .conn_generation = 4};
  ASSERT_EQ(t.take_over(DeviceId{1}, a, c, ipv4("198.51.100.2", 40000), 1700000100).status,
            ClaimStatus::claimed);
  list = t.connected();
  const auto it = std::find_if(list.begin(), list.end(), [](auto& s) { return s.id == DeviceId{1}; });
  ASSERT_NE(it, list.end());
  EXPECT_EQ(it->holder, c);
  EXPECT_EQ(it->peer.to_string(), "198.51.100.2:40000");
  EXPECT_EQ(it->since_unix, 1700000100);
}

// --- races between processes ---

// N forked claimers race for one device per round: on even rounds a fresh device with
// claim() (the key insert races too), on odd rounds a device the parent holds with
// take_over() from the parent. Exactly one wins; every loser is told the winner.
// --- devices show ---

TEST_F(DeviceTableTest, SkewIsTheHoldersAndANewClaimClearsIt) {
  ASSERT_NO_FATAL_FAILURE(open(16, 2));
  auto& t = table();
  const Holder a{.worker = 1, .slot = 3, .conn_generation = 1};
  Lease lease = t.claim(kDevice, a, kPeer, 1700000000).lease;
  ASSERT_TRUE(lease);
  auto found = t.find(kDevice);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->skew, std::nullopt);  // no frame yet

  // The extremes of the range, to see both halves of the word kept apart with their signs.
  for (const ClockSkew skew : {ClockSkew{.last_ms = -1500, .largest_ms = 2100},
                               ClockSkew{.last_ms = 0, .largest_ms = 0},
                               ClockSkew{.last_ms = INT32_MAX, .largest_ms = -INT32_MAX}}) {
    EXPECT_TRUE(lease.accept(at(1), skew));
    found = t.find(kDevice);
    ASSERT_TRUE(found);
    EXPECT_EQ(found->skew, skew);
  }
  const auto listed = t.connected();
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].skew, (ClockSkew{.last_ms = INT32_MAX, .largest_ms = -INT32_MAX}));

  ASSERT_TRUE(lease.release());
  ASSERT_EQ(t.claim(kDevice, a, kPeer, 1700000100).status, ClaimStatus::claimed);
  found = t.find(kDevice);
  ASSERT_TRUE(found);
  EXPECT_EQ(found->skew, std::nullopt);  // the last session's skew is not this one's
}

TEST_F(DeviceTableTest, RefusalsAreCountedWithTheLastReasonAndTime) {
  ASSERT_NO_FATAL_FAILURE(open(16, 2));
  auto& t = table();
  EXPECT_EQ(t.refusals(kDevice).count, 0u);
  EXPECT_EQ(t.refusals(kDevice).last_reason, "");

  t.note_refusal(kDevice, "wrong_key", 1700000000);
  t.note_refusal(kDevice, "time_skew", 1700000005);
  Refusals r = t.refusals(kDevice);
  EXPECT_EQ(r.count, 2u);
  EXPECT_EQ(r.last_reason, "time_skew");
  EXPECT_EQ(r.last_unix, 1700000005);
  EXPECT_FALSE(t.holder(kDevice));  // a refusal claims nothing

  // Reasons that are not recorded change nothing.
  t.note_refusal(kDevice, "unknown_device", 1700000010);
  t.note_refusal(kDevice, "registry_error", 1700000010);
  EXPECT_EQ(t.refusals(kDevice).count, 2u);
  EXPECT_EQ(t.refusals(kDevice).last_reason, "time_skew");
}

TEST_F(DeviceTableTest, RefusalsOfAFloodStayInOneWordAndOneCount) {
  ASSERT_NO_FATAL_FAILURE(open(4, 2));
  auto& t = table();
  for (std::int64_t i = 0; i < 100000; ++i) t.note_refusal(kDevice, "wrong_key", 1700000000 + i);
  const Refusals r = t.refusals(kDevice);
  EXPECT_EQ(r.count, 100000u);
  EXPECT_EQ(r.last_reason, "wrong_key");
  EXPECT_EQ(r.last_unix, 1700000000 + 99999);
  // IDs that are not in the registry (unknown_device) take no entry at all.
  for (std::uint64_t id = 100; id < 1100; ++id) t.note_refusal(DeviceId{id}, "unknown_device", 1);
  // One entry for the device, however many attempts: the room of the others is untouched.
  for (std::uint64_t id = 1; id < 4; ++id) {
    EXPECT_EQ(t.claim(DeviceId{id}, Holder{}, kPeer, 1).status, ClaimStatus::claimed);
  }
  EXPECT_EQ(t.claim(DeviceId{5}, Holder{}, kPeer, 1).status, ClaimStatus::table_full);
}

TEST(RefusalCode, EveryRecordedReasonRoundTrips) {
  for (const std::string_view reason : {"wrong_key", "disabled_device", "duplicate_login",
                                        "time_skew", "replayed_time", "flood", "key_mismatch"}) {
    const std::uint8_t code = refusal_code(reason);
    EXPECT_NE(code, 0) << reason;
    EXPECT_EQ(refusal_name(code), reason);
  }
  EXPECT_EQ(refusal_code("unknown_device"), 0);
  EXPECT_EQ(refusal_code("registry_error"), 0);
  EXPECT_EQ(refusal_code("device_table_full"), 0);
  EXPECT_EQ(refusal_code("idle_timeout"), 0);  // a close, not a refusal
  EXPECT_EQ(refusal_code("no_such_reason"), 0);
  // Every frame error is recorded, and no code is a close's.
  std::size_t recorded = 0;
  for (const CloseReason& reason : kCloseReasons) {
    const std::uint8_t code = refusal_code(reason.name);
    if (code == 0) continue;
    ++recorded;
    EXPECT_TRUE(reason.rejection) << reason.name;
    EXPECT_EQ(refusal_name(code), reason.name);
  }
  EXPECT_EQ(recorded, static_cast<std::size_t>(protocol::FrameError::key_mismatch) + 1 + 3)
      << "every frame error, and wrong_key, disabled_device, duplicate_login";
  EXPECT_EQ(refusal_name(0), "");
  EXPECT_EQ(refusal_name(255), "");
}

TEST_F(DeviceTableTest, OfRacingClaimersExactlyOneWins) {
  constexpr int kClaimers = 8;
  constexpr int kRounds = 200;
  ASSERT_NO_FATAL_FAILURE(open(kRounds, kClaimers));
  struct Outcome {
    ClaimStatus status;
    Holder previous;
  };
  struct Shared {
    std::atomic<int> go{0};
    std::atomic<int> done{0};
    Outcome outcomes[kRounds][kClaimers];
  };
  SharedBlock<Shared> shared;
  const auto device = [](int round) { return DeviceId{std::uint64_t{5000000000} + static_cast<std::uint64_t>(round)}; };
  const auto holder_of = [](int claimer, int round) {
    return Holder{.worker = static_cast<std::uint32_t>(claimer),
                  .slot = static_cast<std::uint32_t>(round), .conn_generation = 1};
  };
  const Holder parent{.worker = 0, .slot = 999999, .conn_generation = 7};

  std::vector<std::unique_ptr<Child>> claimers;
  for (int c = 0; c < kClaimers; ++c) {
    claimers.push_back(std::make_unique<Child>([&, c] {
      const auto deadline = Clock::now() + 60s;
      for (int r = 0; r < kRounds; ++r) {
        for (unsigned spins = 0; shared->go.load(std::memory_order_acquire) <= r; ++spins) {
          if (spins % 256 == 255) {
            ::sched_yield();
            if (Clock::now() > deadline) return 2;
          }
        }
        const ClaimResult res =
            r % 2 == 0 ? table().claim(device(r), holder_of(c, r), kPeer, r)
                       : table().take_over(device(r), parent, holder_of(c, r), kPeer, r);
        shared->outcomes[r][c] = Outcome{res.status, res.previous};
        shared->done.fetch_add(1, std::memory_order_release);
      }
      return 0;
    }));
  }

  const auto deadline = Clock::now() + 60s;
  for (int r = 0; r < kRounds; ++r) {
    if (r % 2 == 1) {
      ASSERT_EQ(table().claim(device(r), parent, kPeer, r).status, ClaimStatus::claimed);
    }
    shared->go.store(r + 1, std::memory_order_release);
    while (shared->done.load(std::memory_order_acquire) < kClaimers * (r + 1)) {
      ASSERT_LT(Clock::now(), deadline) << "round " << r << ": claimers did not finish";
      ::sched_yield();
    }
    int winners = 0, winner = -1;
    for (int c = 0; c < kClaimers; ++c) {
      if (shared->outcomes[r][c].status == ClaimStatus::claimed) ++winners, winner = c;
    }
    ASSERT_EQ(winners, 1) << "round " << r;
    EXPECT_EQ(table().holder(device(r)), holder_of(winner, r)) << "round " << r;
    for (int c = 0; c < kClaimers; ++c) {
      if (c == winner) continue;
      EXPECT_EQ(shared->outcomes[r][c].status, ClaimStatus::held) << "round " << r;
      EXPECT_EQ(shared->outcomes[r][c].previous, holder_of(winner, r)) << "round " << r;
    }
  }
  for (auto& c : claimers) EXPECT_EQ(c->wait(deadline), 0);
  EXPECT_EQ(table().connected().size(), static_cast<std::size_t>(kRounds));
}

// Worker processes claim, accept frames and write pushes through their leases, and release
// at random; the parent SIGKILLs one at random instants (mid-CAS, mid-peer-write, anywhere),
// frees its devices as the master does, and respawns it. The table must stay consistent:
// nothing held by a dead worker after release_worker, marks never below the floors,
// connected() never torn or stuck, and every device claimable at the end.
enum WorkerExit { kWorkerTimeout = 0, kMarkFell = 10, kLostHold = 11, kBadPrevious = 12,
                  kReleaseFailed = 13 };

// The push marks the workers raised, in memory shared with the parent: `intended` before
// the raise, `raised` after it, so that a worker killed between the two leaves the table's
// mark between them, and one not killed there leaves it exactly at its last write.
struct PushMarks {
  static constexpr std::size_t kDevices = 512;
  std::array<std::atomic<std::int64_t>, kDevices> intended{};
  std::array<std::atomic<std::int64_t>, kDevices> raised{};
};

int run_worker(DeviceTable& table, std::uint32_t worker, int devices, std::uint64_t seed,
               PushMarks& marks) {
  std::mt19937_64 rng(seed);
  std::vector<std::int64_t> my_mark(static_cast<std::size_t>(devices), 0);
  std::vector<std::pair<DeviceId, Lease>> held;
  std::uint32_t connection = 0;
  const auto deadline = Clock::now() + 60s;
  while (Clock::now() < deadline) {
    table.counters(worker).frames_in.fetch_add(1, std::memory_order_relaxed);
    if (held.size() < 8 && rng() % 2 == 0) {
      const auto d = static_cast<std::size_t>(rng() % static_cast<std::uint64_t>(devices));
      const DeviceId id{d};
      ++connection;
      const Holder me{.worker = worker, .slot = connection & 0xFFFFFF, .conn_generation = connection};
      const std::uint64_t x = rng() & 0xFFFFFFFFFFFFULL;
      ClaimResult r = table.claim(id, me, peer_of(x), since_of(x));
      if (r.status == ClaimStatus::claimed) {
        if (ticks(r.replay_mark) < my_mark[d]) return kMarkFell;
        const std::int64_t next = ticks(r.replay_mark) + 1 + static_cast<std::int64_t>(rng() % 1000);
        const auto ms = static_cast<std::int32_t>(next % 100000);
        if (!r.lease.accept(at(next), ClockSkew{.last_ms = ms, .largest_ms = -ms})) return kLostHold;
        marks.intended[d].store(next, std::memory_order_relaxed);
        r.lease.raise_push_mark(at(next));
        marks.raised[d].store(next, std::memory_order_relaxed);
        my_mark[d] = next;
        held.emplace_back(id, r.lease);
      } else if (r.status == ClaimStatus::held) {
        // Held by another worker, or by one of this worker's own connections.
        const bool mine = std::any_of(held.begin(), held.end(), [&](const auto& h) {
          return h.first == id && h.second.holder() == r.previous;
        });
        if (r.previous.worker >= table.workers() || (r.previous.worker == worker && !mine)) {
          return kBadPrevious;
        }
      }
    } else if (!held.empty()) {
      const auto i = static_cast<std::size_t>(rng() % held.size());
      Lease& lease = held[i].second;
      if (!lease.holds()) return kLostHold;  // only this worker frees its devices
      if (!lease.release()) return kReleaseFailed;
      held.erase(held.begin() + static_cast<std::ptrdiff_t>(i));
    }
  }
  return kWorkerTimeout;
}

TEST_F(DeviceTableTest, SigkilledWorkersLeaveAConsistentTable) {
  constexpr std::uint32_t kWorkers = 4;
  constexpr int kDevices = 500;
  constexpr int kMaxKills = 200;
  ASSERT_NO_FATAL_FAILURE(open(512, kWorkers));
  auto& t = table();
  std::mt19937_64 rng(static_cast<std::uint64_t>(::getpid()));

  static_assert(kDevices <= PushMarks::kDevices);
  SharedBlock<PushMarks> marks;
  std::vector<std::unique_ptr<Child>> workers(kWorkers);
  const auto spawn = [&](std::uint32_t w) {
    const std::uint64_t seed = rng();
    workers[w] = std::make_unique<Child>(
        [&t, &marks, w, seed] { return run_worker(t, w, kDevices, seed, *marks); });
  };
  for (std::uint32_t w = 0; w < kWorkers; ++w) spawn(w);

  std::vector<std::int64_t> required(kDevices, 0);  // the highest floor each device was freed at
  std::int64_t floor = 0;
  int kills = 0;
  std::size_t freed_total = 0, snapshots = 0, without_peer = 0;
  Clock::duration slowest_connected{};
  const auto held_by = [&](std::uint32_t w) {
    std::vector<int> out;
    for (int d = 0; d < kDevices; ++d) {
      const auto h = t.holder(DeviceId{static_cast<std::uint64_t>(d)});
      if (h && h->worker == w) out.push_back(d);
    }
    return out;
  };
  const auto check_connected = [&](std::optional<std::uint32_t> dead) {
    const auto start = Clock::now();
    const auto list = t.connected();
    slowest_connected = std::max(slowest_connected, Clock::now() - start);
    for (const auto& s : list) {
      ++snapshots;
      ASSERT_LT(s.id.value, static_cast<std::uint64_t>(kDevices));
      ASSERT_LT(s.holder.worker, kWorkers);
      ASSERT_NE(std::optional(s.holder.worker), dead) << "device " << s.id.value;
      if (s.peer.length == 0) {
        ++without_peer;  // a writer busy or killed mid-write: shown without its peer
      } else {
        ASSERT_TRUE(whole(s)) << "torn peer of device " << s.id.value;
      }
      if (s.skew) {
        ASSERT_EQ(s.skew->largest_ms, -s.skew->last_ms) << "a skew no worker wrote, device " << s.id.value;
      }
    }
  };

  const auto start = Clock::now();
  while (kills < kMaxKills && Clock::now() - start < 10s) {
    std::this_thread::sleep_for(std::chrono::microseconds(1000 + rng() % 4000));
    ASSERT_NO_FATAL_FAILURE(check_connected(std::nullopt));
    for (std::uint32_t w = 0; w < kWorkers; ++w) {
      const auto ended = workers[w]->poll_exit();
      ASSERT_FALSE(ended) << "worker " << w << " ended on its own, status " << *ended;
    }
    const auto w = static_cast<std::uint32_t>(rng() % kWorkers);
    const int status = workers[w]->kill_and_reap();
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
        << "worker " << w << " exited with " << (WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    ++kills;

    // The master's part: free what the dead worker held, at a floor above every mark.
    const std::vector<int> held = held_by(w);
    floor += 1'000'000;
    const std::size_t freed = t.release_worker(w, at(floor));
    EXPECT_EQ(freed, held.size()) << "kill " << kills;
    freed_total += freed;
    for (const int d : held) required[static_cast<std::size_t>(d)] = floor;
    ASSERT_TRUE(held_by(w).empty()) << "kill " << kills;
    ASSERT_NO_FATAL_FAILURE(check_connected(w));
    spawn(w);
  }
  const auto elapsed = Clock::now() - start;
  for (std::uint32_t w = 0; w < kWorkers; ++w) {
    const int status = workers[w]->kill_and_reap();
    ASSERT_TRUE(WIFSIGNALED(status)) << "worker " << w << " exited with " << WEXITSTATUS(status);
    const std::vector<int> held = held_by(w);
    floor += 1'000'000;
    EXPECT_EQ(t.release_worker(w, at(floor)), held.size());
    for (const int d : held) required[static_cast<std::size_t>(d)] = floor;
  }
  EXPECT_TRUE(t.connected().empty());

  // Nothing is left locked or half-claimed: every device can be claimed and released.
  for (int d = 0; d < kDevices; ++d) {
    const DeviceId id{static_cast<std::uint64_t>(d)};
    const Holder me{.worker = 0, .slot = 1000000 + static_cast<std::uint32_t>(d), .conn_generation = 1};
    ClaimResult r = t.claim(id, me, kPeer, 1);
    ASSERT_EQ(r.status, ClaimStatus::claimed) << "device " << d;
    EXPECT_GE(ticks(r.replay_mark), required[static_cast<std::size_t>(d)]) << "device " << d;
    // Exactly the last TIME written, unless that writer was killed in mid-raise.
    const std::int64_t raised = marks->raised[static_cast<std::size_t>(d)].load();
    const std::int64_t intended = marks->intended[static_cast<std::size_t>(d)].load();
    EXPECT_GE(ticks(r.push_mark), raised) << "device " << d;
    EXPECT_LE(ticks(r.push_mark), intended) << "device " << d;
    EXPECT_TRUE(r.lease.holds());
    ASSERT_TRUE(r.lease.release()) << "device " << d;
  }
  EXPECT_GT(kills, 20) << "too few kills to mean anything";
  EXPECT_GT(freed_total, 0U);
  std::printf("[ torture  ] %d kills in %lld ms, %zu devices freed by release_worker, %zu "
              "snapshots (%zu without peer), slowest connected() %lld us\n",
              kills, static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count()),
              freed_total, snapshots, without_peer,
              static_cast<long long>(std::chrono::duration_cast<std::chrono::microseconds>(slowest_connected).count()));
  EXPECT_LT(slowest_connected, 2s);
}

}  // namespace
}  // namespace iotsocket::shm::test
