// What push mode writes into the server's push FIFO, and when: the payload that carries a
// push's sequence number and send time, the `ID payload` record line, and the pacing.
// Pure: the unit test checks every rule.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/device_id.hpp"

namespace iotsocket::bench {

// What a push payload carries: its sequence number over the run (0 .. --pushes - 1) and
// the bench's steady clock at the write, in nanoseconds since the clock's epoch. The writer
// and the receivers are threads of one process, so the steady clock is common to both.
struct PushStamp {
  std::uint64_t seq = 0;
  std::uint64_t sent_ns = 0;
  friend bool operator==(const PushStamp&, const PushStamp&) = default;
};

// "p=<seq>;t=<sent_ns>;" followed by a repeating a-z pattern up to `bytes`; never shorter
// than that prefix (at most 46 bytes). Only letters, digits, '=' and ';': no byte the
// record format escapes, none the frame body strips or cuts at.
std::string make_push_payload(PushStamp stamp, std::size_t bytes);

// The stamp at the start of a received push body, or nothing when the body is not one of
// the bench's payloads.
std::optional<PushStamp> parse_push_payload(std::string_view body);

// Appends the push FIFO record `<id> <payload>\n`; the payload needs no escaping.
void append_push_line(std::string& out, protocol::DeviceId device, std::string_view payload);

// How many pushes are due `elapsed_s` seconds after the first one at `rate` per second
// (push k is due at k / rate; so the first is due at once), at most `total`. A rate of 0
// means no pacing: all of them.
std::uint64_t pushes_due(double elapsed_s, double rate, std::uint64_t total);

}  // namespace iotsocket::bench
