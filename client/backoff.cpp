#include "client/backoff.hpp"

#include <algorithm>

namespace iotsocket::client {

Backoff::Duration Backoff::step(unsigned failures) const noexcept {
  Duration step = initial_;
  for (unsigned i = 0; i < failures && step < max_; ++i) {
    step = step > max_ / 2 ? max_ : step * 2;  // never past max_, so never past the type's range
  }
  return std::clamp(step, Duration{0}, max_);
}

Backoff::Duration Backoff::next() noexcept {
  const Duration full = step(failures_);
  ++failures_;
  const auto half = full.count() / 2;
  std::uniform_int_distribution<Duration::rep> jitter(0, full.count() - half);
  return Duration{half + jitter(random_)};
}

}  // namespace iotsocket::client
