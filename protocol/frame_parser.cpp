// Rules 2 to 10 of docs/PROTOCOL.md, in the order a reader of the spec would check them:
// structure first (blank line, sizes, header lines), then each header's value, then the body.
#include <array>
#include <optional>

#include "protocol/ascii.hpp"
#include "protocol/frame.hpp"
#include "protocol/limits.hpp"

namespace iotsocket::protocol {
namespace {

constexpr std::size_t kHeaderCount = 5;
enum HeaderIndex : std::size_t { kIot, kDate, kTime, kDevice, kKey };
constexpr std::array<std::string_view, kHeaderCount> kHeaderNames{"IOT", "DATE", "TIME",
                                                                   "DEVICE", "KEY"};

std::optional<std::size_t> header_index(std::string_view name) noexcept {
  for (std::size_t i = 0; i < kHeaderCount; ++i) {
    if (kHeaderNames[i] == name) return i;
  }
  return std::nullopt;
}

// Splits the stripped header block into exactly five lines, or says why it cannot.
Expected<std::array<std::string_view, kHeaderCount>, FrameError> split_lines(
    std::string_view block) noexcept {
  std::array<std::string_view, kHeaderCount> lines;
  std::size_t count = 0;
  while (true) {
    const auto end = block.find(kCrlf);
    if (count == kHeaderCount) return Unexpected{FrameError::bad_header_count};
    lines[count++] = block.substr(0, end);
    if (end == std::string_view::npos) break;
    block.remove_prefix(end + kCrlf.size());
  }
  if (count != kHeaderCount) return Unexpected{FrameError::bad_header_count};
  return lines;
}

// Maps the five lines to their values by header name (rules 4 and 5).
Expected<std::array<std::string_view, kHeaderCount>, FrameError> header_values(
    const std::array<std::string_view, kHeaderCount>& lines) noexcept {
  std::array<std::string_view, kHeaderCount> values;
  std::array<bool, kHeaderCount> seen{};
  for (std::string_view line : lines) {
    const auto colon = line.find(':');
    if (colon == std::string_view::npos || line.find(':', colon + 1) != std::string_view::npos) {
      return Unexpected{FrameError::bad_header_line};
    }
    const auto index = header_index(line.substr(0, colon));
    if (!index) return Unexpected{FrameError::unknown_header};
    if (seen[*index]) return Unexpected{FrameError::duplicate_header};
    seen[*index] = true;
    values[*index] = line.substr(colon + 1);
  }
  return values;
}

}  // namespace

std::optional<FrameError> body_size_error(std::string_view stripped_body) noexcept {
  if (stripped_body.size() < kMinBody) return FrameError::body_too_short;
  if (stripped_body.size() > kMaxBody) return FrameError::body_too_large;
  return std::nullopt;
}

Expected<FrameView, FrameError> parse_frame(std::string_view content, Direction direction) noexcept {
  if (content.size() > kMaxFrameContent) return Unexpected{FrameError::frame_too_large};
  const auto split = content.find(kBlankLine);
  if (split == std::string_view::npos) return Unexpected{FrameError::no_blank_line};
  if (split > kMaxHeaderBlock) return Unexpected{FrameError::header_too_large};

  const auto lines = split_lines(strip(content.substr(0, split)));
  if (!lines) return Unexpected{lines.error()};
  const auto values = header_values(*lines);
  if (!values) return Unexpected{values.error()};

  const auto& v = *values;
  if (v[kIot] != "1.1") return Unexpected{FrameError::bad_version};
  const auto time = parse_time(v[kTime]);
  if (!time) return Unexpected{FrameError::bad_time};
  const auto device = direction == Direction::from_device ? parse_device_id_exact(v[kDevice])
                                                          : parse_device_id(v[kDevice]);
  if (!device) return Unexpected{FrameError::bad_device};
  if (v[kKey].empty()) return Unexpected{FrameError::bad_key};

  const std::string_view body = strip(content.substr(split + kBlankLine.size()));
  if (const auto error = body_size_error(body)) return Unexpected{*error};

  return FrameView{.device = *device,
                   .time = *time,
                   .time_text = v[kTime],
                   .date = v[kDate],
                   .key = v[kKey],
                   .body = body};
}

}  // namespace iotsocket::protocol
