// One IOT/1.1 frame: the bytes between two delimiters, checked against docs/PROTOCOL.md
// rules 2 to 10. Pure: no clock here; time tolerance and replay are checked by Session.
#pragma once

#include <optional>
#include <string_view>

#include "protocol/device_id.hpp"
#include "protocol/errors.hpp"
#include "common/expected.hpp"
#include "protocol/time.hpp"

namespace iotsocket::protocol {

// Who wrote the frame. Only DEVICE differs: a device writes 10 digits, the legacy server
// writes the number without leading zeros.
enum class Direction { from_device, from_server };

// A parsed frame. The string views point into the bytes it was parsed from and are valid
// as long as those are (for a Decoder: until its next feed() or next()).
struct FrameView {
  DeviceId device;
  Time time;
  std::string_view time_text;  // TIME as written, for logs
  std::string_view date;       // informational, never checked (rule 6)
  std::string_view key;
  std::string_view body;       // stripped (rule 3)
};

// Parses the bytes between two delimiters (the delimiter itself excluded).
Expected<FrameView, FrameError> parse_frame(std::string_view content, Direction direction) noexcept;

// Rule 10 for a body that is already stripped: body_too_short, body_too_large or nothing.
std::optional<FrameError> body_size_error(std::string_view stripped_body) noexcept;

}  // namespace iotsocket::protocol
