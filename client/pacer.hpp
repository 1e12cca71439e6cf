// Keeps the client under the server's flood limit (docs/PROTOCOL.md: the legacy server closes a
// connection at 333 frames within 3 s). Without it, a queue that filled while the server
// was away would go out at once after the login, get the connection closed for flooding,
// and do the same on every reconnect.
//
// The generic cell rate algorithm: frames go out at most `per_second` on average, in bursts
// of at most `burst`. So any window of W seconds holds at most burst + W * per_second
// frames: 30 + 3 * 90 = 300 < 333 with the defaults. Pure: the time is passed in.
#pragma once

#include <chrono>

namespace iotsocket::client {

class Pacer {
 public:
  using Time = std::chrono::steady_clock::time_point;
  using Nanos = std::chrono::nanoseconds;

  // per_second 0: no limit.
  Pacer(unsigned per_second, unsigned burst) noexcept
      : interval_(per_second == 0 ? Nanos::zero() : Nanos(std::chrono::seconds(1)) / per_second),
        tolerance_(interval_ * (burst > 0 ? burst - 1 : 0)) {}

  // The earliest moment the next frame may go (`now` when it may go now).
  Time next_allowed(Time now) const noexcept {
    const Time earliest = theoretical_ - tolerance_;
    return earliest > now ? earliest : now;
  }

  // Counts one frame sent at `now` (call only when next_allowed(now) <= now).
  void sent(Time now) noexcept { theoretical_ = (theoretical_ > now ? theoretical_ : now) + interval_; }

 private:
  Nanos interval_;
  Nanos tolerance_;
  Time theoretical_{};  // when the next frame would be due at the steady rate
};

}  // namespace iotsocket::client
