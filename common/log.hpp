// Logging: spdlog to stderr, one line per event, so that journald (or the terminal) keeps it.
// Each process names itself ("master", "worker 1", "iotsocketctl"); call sites use
// spdlog::info(...) and friends directly.
#pragma once

#include <optional>
#include <string_view>

#include <spdlog/spdlog.h>

namespace iotsocket::log {

// Parses "trace", "debug", "info", "warn", "error", "critical" or "off".
std::optional<spdlog::level::level_enum> parse_level(std::string_view text);

// Installs the default logger: stderr, "<time> <level> <process>: <message>".
// Safe to call again (e.g. in a forked worker, to rename the process).
void init(std::string_view process_name, spdlog::level::level_enum level);

}  // namespace iotsocket::log
