#include "protocol/device_id.hpp"

#include <cassert>
#include <charconv>

#include "protocol/ascii.hpp"

namespace iotsocket::protocol {

std::optional<DeviceId> parse_device_id_exact(std::string_view text) noexcept {
  if (text.size() != kDeviceIdDigits) return std::nullopt;
  return parse_device_id(text);
}

std::optional<DeviceId> parse_device_id(std::string_view text) noexcept {
  if (!all_digits(text)) return std::nullopt;
  std::uint64_t value = 0;
  for (char c : text) {
    value = value * 10 + static_cast<std::uint64_t>(c - '0');
    if (value > kMaxDeviceId) return std::nullopt;  // checked per digit: no overflow
  }
  return DeviceId{value};
}

void append_device_id_padded(std::string& out, DeviceId id) {
  assert(id.value <= kMaxDeviceId && "a wider ID would lose its leading digits");
  char digits[kDeviceIdDigits];
  std::uint64_t value = id.value;
  for (std::size_t i = kDeviceIdDigits; i-- > 0;) {
    digits[i] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
  out.append(digits, kDeviceIdDigits);
}

void append_device_id(std::string& out, DeviceId id) {
  char digits[24];
  const char* end = std::to_chars(digits, digits + sizeof digits, id.value).ptr;
  out.append(digits, static_cast<std::size_t>(end - digits));
}

std::string to_string(DeviceId id) {
  std::string out;
  append_device_id_padded(out, id);
  return out;
}

}  // namespace iotsocket::protocol
