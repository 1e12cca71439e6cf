// Writes IOT/1.1 frames byte for byte as the legacy implementation does (docs/PROTOCOL.md
// "Frame"), so that captures of our traffic and of the legacy's compare equal.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "protocol/device_id.hpp"
#include "protocol/errors.hpp"
#include "protocol/time.hpp"

namespace iotsocket::protocol {

// The fixed DATE and KEY values the legacy sides write (DATE is never checked, rule 6;
// clients do not check the KEY of a push, rule 9).
inline constexpr std::string_view kLegacyDeviceDate = "12/12/2019";
inline constexpr std::string_view kLegacyPushDate = "24/7/2019";
inline constexpr std::string_view kLegacyPushKey = "AJ";

// Rule 11: deletes every "|#|", also one formed by an earlier deletion ("||#|#|" -> ""),
// so that the result never contains the delimiter. (Python's str.replace, which the legacy
// used, makes a single pass and can leave one.)
std::string remove_delimiters(std::string_view payload);

// What the receiver would make of `payload` as a body: body_too_short, body_too_large, or
// nothing when it is a valid body after delimiter removal and stripping.
std::optional<FrameError> payload_error(std::string_view payload);

// A key that survives the trip: 1 to kMaxKeyBytes of printable ASCII, no ':', no
// whitespace (a trailing space would be stripped away with the header block) and no "|#|"
// (the receiver would cut the frame inside the KEY line).
bool is_sendable_key(std::string_view key) noexcept;

// Both encoders delete delimiters from the payload (remove_delimiters), write the body
// stripped (the receiver strips it anyway, rule 3; so no frame exceeds kMaxFrameBytes,
// whatever whitespace the payload carries) and, when the body ends in "|#", write one
// space after it so that it cannot run into the delimiter. They refuse a device ID above
// kMaxDeviceId (bad_device) and a TIME outside 0..kMaxTime (bad_time).
//
// Appends a device frame:
//   IOT:1.1\r\nDATE:12/12/2019\r\nTIME:<t>\r\nDEVICE:<10 digits>\r\nKEY:<key>\r\n\r\n\r\n<body>|#|
// On error nothing is appended.
std::optional<FrameError> append_device_frame(std::string& out, DeviceId device,
                                              std::string_view key, Time time,
                                              std::string_view payload);

// Appends a push frame, as the legacy server writes it (leading CRLF, a line of eight
// spaces, DEVICE without leading zeros):
//   \r\nIOT:1.1\r\nDATE:24/7/2019\r\nTIME:<t>\r\nDEVICE:<id>\r\nKEY:AJ\r\n        \r\n\r\n<body>|#|
// On error nothing is appended.
std::optional<FrameError> append_push_frame(std::string& out, DeviceId device, Time time,
                                            std::string_view payload);

}  // namespace iotsocket::protocol
