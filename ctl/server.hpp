// The `iotsocketctl` commands that talk to the running server: `status` reads the shared
// device table, `push` writes a record into the push FIFO, and `close_live` asks whichever
// worker holds a device to close it (after `devices disable` or `remove`).
// Exit codes as in devices.hpp.
#pragma once

#include <string>

#include "config/config.hpp"
#include "protocol/device_id.hpp"

namespace iotsocket::ctl {

// Connected devices (ID, worker, peer, since), then one line per worker with its counts.
int status(const config::Config& config, bool summary);
// Sends `payload` (raw bytes; escaped here) to device `id` through fifo.push.
int push(const config::Config& config, protocol::DeviceId id, const std::string& payload);
// Closes the device's live connection, if the server runs and the device is connected;
// prints what it did. Returns kExitOk either way (the registry change is what counts).
int close_live(const config::Config& config, protocol::DeviceId id);

}  // namespace iotsocket::ctl
