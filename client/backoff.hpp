// When to try again after a failed connection: exponential backoff with "equal jitter"
// (half the step fixed, half random), so that a fleet that lost its server at the same
// moment does not come back at the same moment, and no device waits less than half a step.
#pragma once

#include <chrono>
#include <cstdint>
#include <random>

namespace iotsocket::client {

class Backoff {
 public:
  using Duration = std::chrono::milliseconds;

  Backoff(Duration initial, Duration max, std::uint64_t seed) noexcept
      : initial_(initial), max_(max), random_(seed) {}

  // The wait before the next attempt: step = min(max, initial * 2^failures), then a value
  // in [step/2, step]. Each call counts one more failure.
  Duration next() noexcept;

  // A login went through: the next failure starts from `initial` again.
  void reset() noexcept { failures_ = 0; }
  unsigned failures() const noexcept { return failures_; }

  // The step before jitter for a given failure count (for tests and docs).
  Duration step(unsigned failures) const noexcept;

 private:
  Duration initial_;
  Duration max_;
  unsigned failures_ = 0;
  std::mt19937_64 random_;
};

}  // namespace iotsocket::client
