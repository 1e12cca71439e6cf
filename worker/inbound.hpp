// Inbound: where a worker puts the frames it accepted (docs/ARCHITECTURE.md "Seams"). Today
// the inbound FIFO with the disk spool behind it (InboundSink, README-inbound.md); a sink
// that publishes to a cluster is another implementation, not edits in the loop.
//
// The loop's contract: has_room() before a frame leaves the decoder, append() it, flush()
// once per pass; while writable_fd() >= 0 wait for it to be writable, and call flush()
// again after retry_in(). Nothing here may block or throw.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/device_id.hpp"

namespace iotsocket::worker {

class Inbound {
 public:
  virtual ~Inbound() = default;

  // Takes one record; false (nothing taken) when it has no room: stop reading that device
  // until has_room().
  virtual bool append(protocol::DeviceId id, std::string_view payload) noexcept = 0;
  // True when a payload of this many bytes would surely be taken by append().
  virtual bool has_room(std::size_t payload_bytes) const noexcept = 0;
  // Moves what was taken on, never waiting.
  virtual void flush() noexcept = 0;
  // >= 0: wait until this descriptor is writable, then flush().
  virtual int writable_fd() const noexcept = 0;
  // Call flush() again after this long; nullopt: nothing to retry.
  virtual std::optional<std::chrono::milliseconds> retry_in() const noexcept = 0;
  // What waits: in this process's memory, and behind it (the spool) as last seen.
  virtual std::size_t pending_bytes() const noexcept = 0;
  virtual std::uint64_t spooled_bytes() const noexcept = 0;
  // Why has_room() is false, for the operator's log line (names the setting at its bound).
  virtual std::string why_full() const = 0;

 protected:
  Inbound() = default;
  Inbound(const Inbound&) = default;
  Inbound& operator=(const Inbound&) = default;
  Inbound(Inbound&&) = default;
  Inbound& operator=(Inbound&&) = default;
};

}  // namespace iotsocket::worker
