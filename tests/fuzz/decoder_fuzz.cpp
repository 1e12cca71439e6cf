// Fuzzes the frame decoder. Input: one control byte (bit 0: direction; the rest: the size
// of the reads to split into), then the stream. Properties:
//  - the same frames (or the same error) whether the stream is fed at once or in reads;
//  - every accepted frame holds to docs/PROTOCOL.md (stripped body of legal size, no delimiter);
//  - every accepted frame re-encodes to bytes that decode to the same fields.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz_check.hpp"
#include "protocol/ascii.hpp"
#include "protocol/decoder.hpp"
#include "protocol/encoder.hpp"
#include "protocol/limits.hpp"

namespace {

using namespace iotsocket::protocol;

struct Summary {
  std::uint64_t device;
  std::int64_t time;
  std::string key;
  std::string body;
  bool operator==(const Summary&) const = default;
};

struct Outcome {
  std::vector<Summary> frames;
  bool failed = false;
  FrameError error{};
  bool operator==(const Outcome&) const = default;
};

Outcome decode(std::string_view stream, std::size_t chunk, Direction direction) {
  Decoder decoder(direction);
  Outcome out;
  for (std::size_t at = 0; at < stream.size() && !out.failed; at += chunk) {
    decoder.feed(stream.substr(at, chunk));
    for (Decoded d = decoder.next(); d.status != DecodeStatus::need_more; d = decoder.next()) {
      if (d.status == DecodeStatus::failed) {
        out.failed = true;
        out.error = d.error;
        break;
      }
      const FrameView& f = d.frame;
      out.frames.push_back({f.device.value, f.time.time_since_epoch().count(), std::string(f.key),
                            std::string(f.body)});
    }
    FUZZ_CHECK(decoder.buffered() < kMaxFrameBytes);
  }
  return out;
}

void check_frame_rules(const Summary& frame) {
  FUZZ_CHECK(frame.body.size() >= kMinBody && frame.body.size() <= kMaxBody);
  FUZZ_CHECK(strip(frame.body) == frame.body);
  FUZZ_CHECK(frame.body.find(kDelimiter) == std::string::npos);
  FUZZ_CHECK(!frame.key.empty());
  FUZZ_CHECK(frame.device <= kMaxDeviceId);
}

void check_reencodes(const Summary& frame, Direction direction) {
  std::string bytes;
  const Time time{Tick{frame.time}};
  if (direction == Direction::from_server) {
    FUZZ_CHECK(!append_push_frame(bytes, DeviceId{frame.device}, time, frame.body));
  } else if (is_sendable_key(frame.key)) {
    FUZZ_CHECK(!append_device_frame(bytes, DeviceId{frame.device}, frame.key, time, frame.body));
  } else {
    return;  // keys with spaces parse (rule 4 trims nothing) but our encoder will not write them
  }
  const Outcome again = decode(bytes, bytes.size(), direction);
  FUZZ_CHECK(!again.failed && again.frames.size() == 1);
  const Summary& copy = again.frames.front();
  FUZZ_CHECK(copy.device == frame.device && copy.time == frame.time && copy.body == frame.body);
  FUZZ_CHECK(direction == Direction::from_server || copy.key == frame.key);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const Direction direction = (data[0] & 1) != 0 ? Direction::from_server : Direction::from_device;
  const std::size_t chunk = 1 + (data[0] >> 1);
  const std::string_view stream(reinterpret_cast<const char*>(data + 1), size - 1);

  const Outcome whole = decode(stream, stream.size() + 1, direction);
  FUZZ_CHECK(decode(stream, chunk, direction) == whole);
  for (const Summary& frame : whole.frames) {
    check_frame_rules(frame);
    check_reencodes(frame, direction);
  }
  return 0;
}
