// `iotsocketctl devices show ID`: everything known about one device, for "why is device X
// offline?". The registry gives what outlives the server (the last session that ended);
// the running server's shared device table gives the live part (worker, peer, clock skew of
// its recent frames, refused logins since the server started).
#pragma once

#include "config/config.hpp"
#include "protocol/device_id.hpp"

namespace iotsocket::ctl {

// One `key: value` line per fact, always the same keys in the same order ("-" for none);
// kExitFailed with "no device ID" on stderr for a device not in the registry.
int devices_show(const config::Config& config, protocol::DeviceId id);

}  // namespace iotsocket::ctl
