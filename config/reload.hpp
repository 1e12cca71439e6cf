// What SIGHUP may change in a running server, and what waits for a restart. Pure functions
// of two Configs, shared by the master and the workers so that both apply the same rule.
//
// Reloadable: devices (registry file, duplicate policy), timeouts, protocol, limits
// (max_connections, per_ip), push (offline_max, offline_max_age, write_queue), shutdown,
// log.level, and the TLS certificate and key files (loaded by the master, common/tls).
// Restart-only: the listening sockets, tls.enabled, workers, fifo, spool, runtime,
// limits.max_devices (the shared segment's size), push.offline_db, log.file.
#pragma once

#include <string>
#include <vector>

#include "config/config.hpp"

namespace iotsocket::config {

// `running` with the reloadable settings of `next` (both valid: the result is too).
Config with_reloadable(const Config& running, const Config& next);

// Dotted names ("limits.per_ip") of the reloadable settings that differ.
std::vector<std::string> reloadable_changes(const Config& running, const Config& next);

// Dotted names of the restart-only settings that differ.
std::vector<std::string> restart_only_changes(const Config& running, const Config& next);

}  // namespace iotsocket::config
