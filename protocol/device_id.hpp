// Device IDs are numbers (docs/PROTOCOL.md rule 8): 0123456789 and 123456789 are one device.
// Frames from devices carry exactly 10 digits; push frames and FIFO records carry the
// number with or without leading zeros.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace iotsocket::protocol {

struct DeviceId {
  std::uint64_t value = 0;
  friend constexpr auto operator<=>(DeviceId, DeviceId) = default;
};

inline constexpr std::uint64_t kMaxDeviceId = 9'999'999'999;
inline constexpr std::size_t kDeviceIdDigits = 10;

// Exactly 10 ASCII digits: the DEVICE header of a frame a device sends.
std::optional<DeviceId> parse_device_id_exact(std::string_view text) noexcept;

// One or more ASCII digits whose value is at most kMaxDeviceId: push frames, FIFO records.
std::optional<DeviceId> parse_device_id(std::string_view text) noexcept;

// The 10-digit form, with leading zeros: device frames and the inbound FIFO.
// `id` must be at most kMaxDeviceId (every parsed ID is).
void append_device_id_padded(std::string& out, DeviceId id);
// The number without leading zeros, as the legacy server's push frames carry it.
void append_device_id(std::string& out, DeviceId id);

std::string to_string(DeviceId id);  // the 10-digit form, for logs

}  // namespace iotsocket::protocol

template <>
struct std::hash<iotsocket::protocol::DeviceId> {
  std::size_t operator()(iotsocket::protocol::DeviceId id) const noexcept {
    return std::hash<std::uint64_t>{}(id.value);
  }
};
