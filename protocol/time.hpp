// TIME: Unix epoch seconds written as digits '.' digits, compared at 0.1 ms (docs/PROTOCOL.md
// rule 7). The clock is always passed in, so every rule here is testable without sleeping.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace iotsocket::protocol {

// One tick is 0.1 ms, the resolution at which TIME values are compared.
using Tick = std::chrono::duration<std::int64_t, std::ratio<1, 10'000>>;
using Time = std::chrono::time_point<std::chrono::system_clock, Tick>;

// The largest TIME we parse: far beyond any clock, small enough that no arithmetic on
// ticks can overflow.
inline constexpr std::int64_t kMaxTimeSeconds = 999'999'999'999;
inline constexpr Time kMaxTime{Tick{(kMaxTimeSeconds + 1) * Tick::period::den - 1}};

// A wall-clock instant truncated to the protocol's resolution.
constexpr Time to_time(std::chrono::system_clock::time_point t) noexcept {
  return std::chrono::floor<Tick>(t);
}

// Parses digits '.' digits. Decimals beyond the fourth are truncated, fewer are padded.
std::optional<Time> parse_time(std::string_view text) noexcept;

// Appends the legacy form: seconds, '.', exactly four decimals ("1795571767.0581").
// Times before the epoch cannot be written in this form and are written as 0.0000.
void append_time(std::string& out, Time t);
std::string format_time(Time t);

// A span of ticks for people, to a tenth of a second: "5.2 s", "-1.5 s".
std::string seconds_text(Tick ticks);

// |t - now| < tolerance, the server's and the client's time check.
constexpr bool within_tolerance(Time t, Time now, Tick tolerance) noexcept {
  const Tick diff = t > now ? t - now : now - t;
  return diff < tolerance;
}

// When a frame's bytes reached the server: not before `earliest` (the last moment the
// server knew the connection had nothing unread) and not after `latest` (when it read
// them). A frame read at once has an interval of a loop pass; one that waited in the
// socket because the server was not reading (its own back-pressure, its own load) has the
// wait in it. The server's pause must never make a device's frame stale, so the time
// check measures TIME against this interval, not against the moment of reading.
struct Arrival {
  Time earliest;
  Time latest;

  static constexpr Arrival at(Time now) noexcept { return {now, now}; }
  // The instant of the interval nearest to t: the server's clock for a frame stamped t.
  constexpr Time nearest(Time t) const noexcept {
    return t < earliest ? earliest : (t > latest ? latest : t);
  }
};

// TIME within the tolerance of some instant at which the frame may have arrived.
constexpr bool within_tolerance(Time t, Arrival arrival, Tick tolerance) noexcept {
  return within_tolerance(t, arrival.nearest(t), tolerance);
}

// Gives every frame a sender writes to a peer a strictly increasing TIME, even when two
// frames fall in the same 0.1 ms (docs/PROTOCOL.md: "a TIME value already seen ... is
// rejected"). It runs ahead of the clock only while frames come faster than one per tick.
//
// Keep one per peer, not per connection: the legacy client remembers the TIMEs it has seen
// across reconnects, so the server's push TIMEs must keep rising for a device that
// reconnects. Hence the state is one trivially copyable value (for the device table).
class TimeStamper {
 public:
  constexpr TimeStamper() noexcept = default;
  constexpr explicit TimeStamper(Time last) noexcept : last_(last) {}

  // The TIME for the next frame, or nullopt when it would run `max_lead` or more ahead of
  // `now`: the peer would refuse it, so the caller waits (or sends less) instead.
  std::optional<Time> next(Time now, Tick max_lead) noexcept;

  // The last TIME given out, to store and restore the state.
  constexpr Time last() const noexcept { return last_; }

 private:
  Time last_{};
};

}  // namespace iotsocket::protocol
