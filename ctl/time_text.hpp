// Times as iotsocketctl prints them: UTC, ISO 8601, to the second ("2026-12-01T02:30:56Z").
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include <fmt/chrono.h>
#include <fmt/core.h>

namespace iotsocket::ctl {

inline std::string iso_utc(std::chrono::sys_seconds t) {
  return fmt::format("{:%Y-%m-%dT%H:%M:%SZ}", t);
}

inline std::string iso_utc(std::int64_t unix_seconds) {
  return iso_utc(std::chrono::sys_seconds(std::chrono::seconds(unix_seconds)));
}

}  // namespace iotsocket::ctl
