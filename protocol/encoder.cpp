#include "protocol/encoder.hpp"

#include "protocol/ascii.hpp"
#include "protocol/frame.hpp"
#include "protocol/limits.hpp"

namespace iotsocket::protocol {
namespace {

void append_header(std::string& out, std::string_view name, std::string_view value) {
  out.append(name).append(":").append(value).append(kCrlf);
}

// The first three header lines, the same in both directions but for the DATE.
void append_version_date_time(std::string& out, std::string_view date, Time time) {
  append_header(out, "IOT", "1.1");
  append_header(out, "DATE", date);
  out.append("TIME:");
  append_time(out, time);
  out.append(kCrlf);
}

// Checks the payload and, when it is a valid body, appends the body and the delimiter.
// The body is written stripped: the receiver strips it anyway (rule 3), and whitespace
// padding could otherwise push the frame past kMaxFrameBytes.
std::optional<FrameError> append_body(std::string& out, std::size_t frame_start,
                                      std::string_view payload) {
  const std::string sanitized = remove_delimiters(payload);
  const std::string_view body = strip(sanitized);
  if (const auto error = body_size_error(body)) {
    out.resize(frame_start);
    return error;
  }
  out.append(body);
  // A body ending in "|#" would run into the delimiter ("...|#|#|") and the receiver would
  // cut the frame two bytes early. One space keeps them apart; receivers strip it (rule 3).
  if (body.ends_with(kDelimiter.substr(0, 2))) out.push_back(' ');
  out.append(kDelimiter);
  return std::nullopt;
}

// What the two encoders check before writing anything: values our own parser would refuse
// are refused here rather than sent.
std::optional<FrameError> header_error(DeviceId device, Time time) noexcept {
  if (device.value > kMaxDeviceId) return FrameError::bad_device;
  if (time < Time{} || time > kMaxTime) return FrameError::bad_time;
  return std::nullopt;
}

}  // namespace

std::string remove_delimiters(std::string_view payload) {
  std::string out;
  out.reserve(payload.size());
  for (char c : payload) {
    out.push_back(c);
    // `out` held no delimiter before this byte, so one can only end here.
    if (out.ends_with(kDelimiter)) out.resize(out.size() - kDelimiter.size());
  }
  return out;
}

std::optional<FrameError> payload_error(std::string_view payload) {
  return body_size_error(strip(remove_delimiters(payload)));
}

bool is_sendable_key(std::string_view key) noexcept {
  if (key.empty() || key.size() > kMaxKeyBytes) return false;
  if (key.find(kDelimiter) != std::string_view::npos) return false;
  for (char c : key) {
    if (c <= ' ' || c > '~' || c == ':') return false;
  }
  return true;
}

std::optional<FrameError> append_device_frame(std::string& out, DeviceId device,
                                              std::string_view key, Time time,
                                              std::string_view payload) {
  if (!is_sendable_key(key)) return FrameError::bad_key;
  if (const auto error = header_error(device, time)) return error;
  const std::size_t start = out.size();
  append_version_date_time(out, kLegacyDeviceDate, time);
  out.append("DEVICE:");
  append_device_id_padded(out, device);
  out.append(kCrlf);
  append_header(out, "KEY", key);
  out.append(kCrlf).append(kCrlf);
  return append_body(out, start, payload);
}

std::optional<FrameError> append_push_frame(std::string& out, DeviceId device, Time time,
                                            std::string_view payload) {
  if (const auto error = header_error(device, time)) return error;
  const std::size_t start = out.size();
  out.append(kCrlf);
  append_version_date_time(out, kLegacyPushDate, time);
  out.append("DEVICE:");
  append_device_id(out, device);
  out.append(kCrlf);
  append_header(out, "KEY", kLegacyPushKey);
  out.append("        ").append(kCrlf).append(kCrlf);
  return append_body(out, start, payload);
}

}  // namespace iotsocket::protocol
