// The shared-memory device table (docs/ARCHITECTURE.md "Processes"): the one place that knows
// which worker connection holds which device, the device's replay and push marks (so they
// hold across reconnects and workers), and per-worker counters. Read live by iotsocketctl.
//
// One POSIX shared-memory segment (Boost.Interprocess), created by the master before it
// forks the workers, who inherit the mapping. Every field that more than one process writes
// is a lock-free std::atomic: there is no lock, so a process killed by SIGKILL at any
// instruction cannot leave the table locked. A claim is one compare-and-swap of the entry's
// holder word; a slot's key, once set, never changes (devices are never removed from the
// table; a slot is small, and the registry bounds how many devices exist).
//
// Move-only owner of the mapping. The segment's name is removed by the master (unlink()).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock_skew.hpp"
#include "common/net.hpp"
#include "protocol/device_id.hpp"
#include "common/expected.hpp"
#include "protocol/time.hpp"
#include "shm/worker_counters.hpp"

namespace iotsocket::shm {

using protocol::DeviceId;

// One connection of one worker: the holder of a device.
struct Holder {
  std::uint32_t worker = 0;           // worker index, 0 .. workers-1 (workers at most 4095)
  std::uint32_t slot = 0;             // the worker's connection slot (below 2^24)
  std::uint32_t conn_generation = 0;  // tells a reused slot from its earlier occupant (low 28 bits kept)
  friend bool operator==(const Holder&, const Holder&) = default;
};

// A connected device as iotsocketctl status shows it.
struct DeviceSnapshot {
  DeviceId id;
  Holder holder;
  PeerAddress peer;
  std::int64_t since_unix = 0;  // seconds since the epoch, login time
  std::optional<ClockSkew> skew;  // of its recent frames; nullopt before the first
};

// The refused logins of a device since the table was created (refusal.hpp says which).
struct Refusals {
  std::uint32_t count = 0;
  std::string_view last_reason;  // "" when none
  std::int64_t last_unix = 0;    // seconds since the epoch
};

enum class ClaimStatus {
  claimed,     // `me` holds the device now
  held,        // another connection holds it; `previous` says which
  table_full,  // no free slot for a device not yet in the table
};

struct ClaimResult {
  ClaimStatus status = ClaimStatus::table_full;
  Holder previous{};             // when held: the current holder
  protocol::Time replay_mark{};  // the highest TIME accepted for the device (claimed or held)
  protocol::Time push_mark{};    // when claimed: the last TIME the server wrote to it
};

class DeviceTable {
 public:
  // The master at start: removes a segment of this name left by an earlier run (an error
  // when the master recorded in it is still alive: two servers with one shm_name), then
  // creates a fresh one for `capacity` devices and `workers` workers. Errors name the
  // segment and what failed.
  static Expected<DeviceTable, std::string> create(const std::string& name, std::uint32_t capacity,
                                                   std::uint32_t workers);
  // iotsocketctl: attaches to the running server's segment (read-write: revocations).
  static Expected<DeviceTable, std::string> attach(const std::string& name);

  DeviceTable(DeviceTable&&) noexcept;
  DeviceTable& operator=(DeviceTable&&) noexcept;
  DeviceTable(const DeviceTable&) = delete;
  DeviceTable& operator=(const DeviceTable&) = delete;
  ~DeviceTable();

  // Removes the segment's name (the master at exit); attached mappings stay valid.
  void unlink() noexcept;

  std::uint32_t capacity() const noexcept;
  std::uint32_t workers() const noexcept;
  pid_t master_pid() const noexcept;
  // Whether that master still runs (not a zombie, not a reused pid): a segment a crashed
  // server left behind answers false.
  bool master_running() const noexcept;

  // --- holders (workers) ---
  // Makes `me` the holder unless another connection holds the device. Atomic across
  // processes: of two racing claims exactly one gets `claimed`.
  ClaimResult claim(DeviceId id, const Holder& me, const PeerAddress& peer,
                    std::int64_t since_unix) noexcept;
  // devices.duplicate: replace. Moves the device from `previous` to `me` in one step when
  // `previous` still holds it (claimed); when the device has become free meanwhile it is
  // claim(); when a third connection holds it now, held with that one as `previous`.
  ClaimResult take_over(DeviceId id, const Holder& previous, const Holder& me,
                        const PeerAddress& peer, std::int64_t since_unix) noexcept;
  // Ends the hold of `me`; false (and nothing changed) when `me` no longer holds it.
  bool release(DeviceId id, const Holder& me) noexcept;
  // Whether `me` still holds the device (a replaced connection learns here that it was).
  bool holds(DeviceId id, const Holder& me) const noexcept;
  std::optional<Holder> holder(DeviceId id) const noexcept;
  // The holder with its peer and login time (log lines about a duplicate login).
  std::optional<DeviceSnapshot> find(DeviceId id) const noexcept;

  // Marks only ever rise (atomic max). The replay mark is the highest TIME accepted from
  // the device; the push mark the last TIME written to it.
  void raise_replay_mark(DeviceId id, protocol::Time t) noexcept;
  void raise_push_mark(DeviceId id, protocol::Time t) noexcept;

  // --- what `iotsocketctl devices show` reads (relaxed stores, no lock, no disk) ---
  // The holder, per accepted frame; a claim clears it.
  void set_skew(DeviceId id, const ClockSkew& skew) noexcept;
  // A refused login of a known device: counts it and keeps the last reason and time.
  // Reasons refusal_code() does not know are ignored (and insert no entry).
  void note_refusal(DeviceId id, std::string_view reason, std::int64_t unix_seconds) noexcept;
  Refusals refusals(DeviceId id) const noexcept;

  // --- the master ---
  // Frees every device held by worker `worker` (it died), raising their replay marks to at
  // least `floor`. Returns how many were freed.
  std::size_t release_worker(std::uint32_t worker, protocol::Time floor) noexcept;

  // --- revocation (iotsocketctl devices disable/remove) ---
  // Asks whoever holds the device to close it; workers poll close_epoch() and then
  // take_close_request() for each device they hold.
  void request_close(DeviceId id) noexcept;
  std::uint64_t close_epoch() const noexcept;
  bool take_close_request(DeviceId id) noexcept;  // true once per request

  // --- reading ---
  WorkerCounters& counters(std::uint32_t worker) noexcept;
  const WorkerCounters& counters(std::uint32_t worker) const noexcept;
  std::vector<DeviceSnapshot> connected() const;  // held devices, any order

  struct Layout;  // the segment's contents, in device_table.cpp

 private:
  struct Mapping;
  explicit DeviceTable(std::unique_ptr<Mapping> mapping) noexcept;
  std::unique_ptr<Mapping> mapping_;
  Layout* layout_ = nullptr;
};

}  // namespace iotsocket::shm
