// The `iotsocketctl devices ...` commands. Each opens the registry, does one thing and
// returns the exit code: 0 done, 1 failed (the cause is on stderr). Results go to stdout
// in a form that scripts can read.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/registry.hpp"

namespace iotsocket::ctl {

inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;
inline constexpr int kExitUsage = 2;

// Prints "iotsocketctl: <message>" on stderr and returns kExitFailed.
int fail(std::string_view message);

// Prints "<10-digit ID> <key>" when it generated the key, "<10-digit ID>" otherwise.
int devices_add(const std::string& registry, DeviceId id, std::optional<std::string> key);
// A header, then one row per device: ID, enabled, created, last seen (UTC, ISO 8601).
int devices_list(const std::string& registry);
int devices_remove(const std::string& registry, DeviceId id);
int devices_set_enabled(const std::string& registry, DeviceId id, bool enabled);
// `file` "-" is stdin. All devices or none; `fast_hash` is for randomly generated keys.
int devices_import(const std::string& registry, const std::string& file, bool fast_hash);

}  // namespace iotsocket::ctl
