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
#include "common/expected.hpp"
#include "common/net.hpp"
#include "protocol/device_id.hpp"
#include "protocol/time.hpp"
#include "shm/device_directory.hpp"
#include "shm/lease.hpp"
#include "shm/worker_counters.hpp"

namespace iotsocket::shm {

// The refused logins of a device since the table was created (refusal.hpp says which).
struct Refusals {
  std::uint32_t count = 0;
  std::string_view last_reason;  // "" when none
  std::int64_t last_unix = 0;    // seconds since the epoch
};

class DeviceTable final : public DeviceDirectory {
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

  std::uint32_t capacity() const noexcept override;
  std::uint32_t workers() const noexcept;
  pid_t master_pid() const noexcept;
  // Whether that master still runs (not a zombie, not a reused pid): a segment a crashed
  // server left behind answers false.
  bool master_running() const noexcept;

  // --- the directory (device_directory.hpp says what each does) ---
  // Atomic across processes: a claim is one compare-and-swap of the entry's holder word.
  // A claimed result carries the Lease on the entry.
  ClaimResult claim(DeviceId id, const Holder& me, const PeerAddress& peer,
                    std::int64_t since_unix) noexcept override;
  ClaimResult take_over(DeviceId id, const Holder& previous, const Holder& me,
                        const PeerAddress& peer, std::int64_t since_unix) noexcept override;
  std::optional<DeviceSnapshot> find(DeviceId id) const noexcept override;
  // Reasons refusal_code() does not know are ignored (and insert no entry).
  void note_refusal(DeviceId id, std::string_view reason,
                    std::int64_t unix_seconds) noexcept override;
  std::uint64_t close_epoch() const noexcept override;
  bool take_close_request(DeviceId id) noexcept override;
  std::optional<Holder> holder(DeviceId id) const noexcept override;
  std::size_t release_worker(std::uint32_t worker, protocol::Time floor) noexcept override;

  // --- iotsocketctl (a connection's own entry goes through its Lease) ---
  // What `iotsocketctl devices show` reads besides the snapshot: the refused logins.
  Refusals refusals(DeviceId id) const noexcept;
  // Asks whoever holds the device to close it (iotsocketctl devices disable/remove).
  void request_close(DeviceId id) noexcept;

  // --- reading ---
  WorkerCounters& counters(std::uint32_t worker) noexcept;
  const WorkerCounters& counters(std::uint32_t worker) const noexcept;
  std::vector<DeviceSnapshot> connected() const;  // held devices, any order

  struct Layout;  // the segment's contents (layout.hpp)

 private:
  struct Mapping;
  explicit DeviceTable(std::unique_ptr<Mapping> mapping) noexcept;
  // A claimed result gets the lease on `e` (only the table makes leases).
  static ClaimResult with_lease(ClaimResult result, detail::Entry& e, const Holder& me) noexcept;
  std::unique_ptr<Mapping> mapping_;
  Layout* layout_ = nullptr;
};

}  // namespace iotsocket::shm
