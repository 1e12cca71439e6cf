// Durations ("90s") and sizes ("64MiB") as written in the config file. Pure text → value;
// the message of an error says what is accepted, so it can be shown to the user as is.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "common/expected.hpp"

namespace iotsocket::config {

// The longest duration accepted: a year is beyond every timeout we have, and the cap keeps
// any later arithmetic (e.g. in 0.1 ms ticks) far from overflow.
inline constexpr Duration kMaxDuration = std::chrono::hours(24 * 365);

// Decimal digits only (no sign, no spaces); nullopt if not that or above 2^64-1.
std::optional<std::uint64_t> parse_unsigned(std::string_view text);

// A positive integer and a unit: ms, s, m or h ("500ms", "90s", "5m", "24h"). A bare
// number is refused: "90" could mean seconds or milliseconds.
Expected<Duration, std::string> parse_duration(std::string_view text);

// A byte count: a bare integer, or an integer and a unit. B; KiB, MiB, GiB, TiB (powers
// of 1024); KB, MB, GB, TB (powers of 1000). Zero is a valid size here; callers that need
// a positive one check it.
Expected<std::uint64_t, std::string> parse_size(std::string_view text);

}  // namespace iotsocket::config
