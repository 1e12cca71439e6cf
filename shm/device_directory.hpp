// The device directory: who holds which device, as the master's routing and the workers'
// logins see it (docs/ARCHITECTURE.md "Seams"). Today's implementation is the shared-memory
// table of one node (DeviceTable); a cluster's (the node's table plus a directory shared
// by the nodes) is another implementation of this interface, not edits across the loops.
//
// Frames do not come here: a claim returns a Lease on the device's entry, and what a
// connection does per frame goes through the lease, so that no accepted frame waits on
// anything but its own entry.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "common/clock_skew.hpp"
#include "common/net.hpp"
#include "protocol/device_id.hpp"
#include "protocol/time.hpp"
#include "shm/lease.hpp"

namespace iotsocket::shm {

using protocol::DeviceId;

// A connected device as iotsocketctl status shows it.
struct DeviceSnapshot {
  DeviceId id;
  Holder holder;
  PeerAddress peer;
  std::int64_t since_unix = 0;  // seconds since the epoch, login time
  std::optional<ClockSkew> skew;  // of its recent frames; nullopt before the first
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
  Lease lease{};                 // when claimed: the hold, for the connection to keep
};

class DeviceDirectory {
 public:
  virtual ~DeviceDirectory() = default;

  // --- a worker's logins ---
  // Makes `me` the holder unless another connection holds the device. Of two racing
  // claims exactly one gets `claimed`.
  virtual ClaimResult claim(DeviceId id, const Holder& me, const PeerAddress& peer,
                            std::int64_t since_unix) noexcept = 0;
  // devices.duplicate: replace. Moves the device from `previous` to `me` in one step when
  // `previous` still holds it (claimed); when the device has become free meanwhile it is
  // claim(); when a third connection holds it now, held with that one as `previous`.
  virtual ClaimResult take_over(DeviceId id, const Holder& previous, const Holder& me,
                                const PeerAddress& peer, std::int64_t since_unix) noexcept = 0;
  // The holder with its peer and login time (log lines about a duplicate login).
  virtual std::optional<DeviceSnapshot> find(DeviceId id) const noexcept = 0;
  // A refused login of a known device (devices show).
  virtual void note_refusal(DeviceId id, std::string_view reason,
                            std::int64_t unix_seconds) noexcept = 0;
  // How many devices fit (the log line of a refusal for want of room).
  virtual std::uint32_t capacity() const noexcept = 0;

  // --- revocation: iotsocketctl devices disable/remove ---
  // Workers poll close_epoch() and, when it moved, take_close_request() for each device
  // they hold.
  virtual std::uint64_t close_epoch() const noexcept = 0;
  virtual bool take_close_request(DeviceId id) noexcept = 0;  // true once per request

  // --- the master ---
  virtual std::optional<Holder> holder(DeviceId id) const noexcept = 0;  // routing a push
  // Frees every device held by worker `worker` (it died), raising their replay marks to at
  // least `floor`. Returns how many were freed.
  virtual std::size_t release_worker(std::uint32_t worker, protocol::Time floor) noexcept = 0;

 protected:
  DeviceDirectory() = default;
  DeviceDirectory(const DeviceDirectory&) = default;
  DeviceDirectory& operator=(const DeviceDirectory&) = default;
};

}  // namespace iotsocket::shm
