// Login: the first frame of a connection. The registry's verdict (unknown device, disabled,
// wrong key: told apart in the log only, the device sees the same close after the same
// work), the claim in the device directory with clone protection (one connection per
// device across all workers, one compare-and-swap) and devices.duplicate (reject the new
// connection, or replace the old one), then the session's own checks of the frame.
//
// On success the connection is live and keeps the claim's lease; the worker counts it,
// says so and tells the master. On failure nothing is held and the caller closes the
// connection as rejected, with the reason returned.
#pragma once

#include <cstdint>
#include <string_view>

#include "common/registry.hpp"
#include "config/config.hpp"
#include "protocol/frame.hpp"
#include "protocol/session.hpp"
#include "protocol/time.hpp"
#include "shm/device_directory.hpp"
#include "worker/connection.hpp"

namespace iotsocket::worker {

class Login {
 public:
  // References into the worker, which outlives this (a reload changes the registry, the
  // devices settings and the limits in place).
  Login(DeviceRegistry& registry, shm::DeviceDirectory& directory, const config::Devices& devices,
        const protocol::SessionLimits& limits, std::uint32_t worker, protocol::Time replay_floor) noexcept
      : registry_(registry), directory_(directory), devices_(devices), limits_(limits),
        worker_(worker), replay_floor_(replay_floor) {}

  // "" when the device is logged in on `c`, else why the connection is rejected.
  std::string_view log_in(Connection& c, const protocol::FrameView& frame, protocol::Arrival arrival) noexcept;

  shm::Holder holder_of(const Connection& c) const noexcept {
    return shm::Holder{.worker = worker_, .slot = c.slot, .conn_generation = c.generation};
  }

 private:
  std::string_view claim(Connection& c, const protocol::FrameView& frame, protocol::Arrival arrival,
                         protocol::Time kept_mark, shm::ClaimResult& claim) noexcept;
  std::string_view replace(Connection& c, const protocol::FrameView& frame, protocol::Arrival arrival,
                           protocol::Time kept_mark, shm::ClaimResult& claim) noexcept;

  DeviceRegistry& registry_;
  shm::DeviceDirectory& directory_;
  const config::Devices& devices_;
  const protocol::SessionLimits& limits_;
  std::uint32_t worker_;
  // Logins refuse TIMEs at or below this (WorkerSetup::replay_floor).
  protocol::Time replay_floor_;
};

}  // namespace iotsocket::worker
