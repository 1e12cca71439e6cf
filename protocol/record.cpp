#include "protocol/record.hpp"

#include "protocol/encoder.hpp"

namespace iotsocket::protocol {
namespace {

RecordError to_record_error(FrameError error) noexcept {
  return error == FrameError::body_too_short ? RecordError::payload_too_short
                                             : RecordError::payload_too_large;
}

}  // namespace

Expected<Record, RecordError> parse_record(std::string_view line) {
  if (line.empty()) return Unexpected{RecordError::empty_line};
  const auto space = line.find(' ');
  if (space == std::string_view::npos) return Unexpected{RecordError::no_space};
  const auto device = parse_device_id(line.substr(0, space));
  if (!device) return Unexpected{RecordError::bad_device_id};
  auto payload = unescape(line.substr(space + 1));
  if (!payload) return Unexpected{payload.error()};
  if (const auto error = payload_error(*payload)) return Unexpected{to_record_error(*error)};
  return Record{*device, std::move(*payload)};
}

void append_record(std::string& out, DeviceId device, std::string_view payload) {
  append_device_id_padded(out, device);
  out.push_back(' ');
  append_escaped(out, payload);
  out.push_back('\n');
}

void append_escaped(std::string& out, std::string_view payload) {
  for (char c : payload) {
    switch (c) {
      case '\n': out.append("\\n"); break;
      case '\r': out.append("\\r"); break;
      case '\\': out.append("\\\\"); break;
      default: out.push_back(c);
    }
  }
}

Expected<std::string, RecordError> unescape(std::string_view escaped) {
  std::string out;
  out.reserve(escaped.size());
  for (std::size_t i = 0; i < escaped.size(); ++i) {
    if (escaped[i] != '\\') {
      out.push_back(escaped[i]);
      continue;
    }
    if (++i == escaped.size()) return Unexpected{RecordError::bad_escape};
    switch (escaped[i]) {
      case 'n': out.push_back('\n'); break;
      case 'r': out.push_back('\r'); break;
      case '\\': out.push_back('\\'); break;
      default: return Unexpected{RecordError::bad_escape};
    }
  }
  return out;
}

}  // namespace iotsocket::protocol
