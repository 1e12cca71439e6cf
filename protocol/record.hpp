// The FIFO record format (docs/PROTOCOL.md "The backend side"): `<device-id> <payload>\n`,
// the payload escaped so that it may hold any byte but LF: `\n` = LF, `\r` = CR,
// `\\` = backslash. Any other backslash sequence is an error, so a record means exactly
// one thing or is refused with a reason.
#pragma once

#include <string>
#include <string_view>

#include "protocol/device_id.hpp"
#include "protocol/errors.hpp"
#include "common/expected.hpp"

namespace iotsocket::protocol {

struct Record {
  DeviceId device;
  std::string payload;  // unescaped
  friend bool operator==(const Record&, const Record&) = default;
};

// Parses one line, its '\n' already removed. The payload must be a valid frame body as the
// device would receive it (payload_error() in encoder.hpp): a record the device would
// refuse is refused here, where the backend's mistake can be logged, instead of closing
// the device's connection.
Expected<Record, RecordError> parse_record(std::string_view line);

// Appends `<10-digit id> <escaped payload>\n`, the inbound FIFO's form.
void append_record(std::string& out, DeviceId device, std::string_view payload);

void append_escaped(std::string& out, std::string_view payload);
Expected<std::string, RecordError> unescape(std::string_view escaped);

}  // namespace iotsocket::protocol
