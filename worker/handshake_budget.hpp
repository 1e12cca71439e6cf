// A TLS handshake costs about a millisecond of CPU (key exchange and a signature); a flood of
// them must not starve the connections that are logged in. Each loop pass spends at most
// kPerPass on handshake steps. A connection whose step does not fit waits for a later pass
// (epoll is level-triggered: it is reported again), so a pass stays short whatever the
// flood, and logged-in devices are read every pass. How many waited in the last pass is
// what the master reads to shed new connections while this worker is behind.
#pragma once

#include <chrono>
#include <cstdint>

namespace iotsocket::worker {

class HandshakeBudget {
 public:
  using Clock = std::chrono::steady_clock;
  static constexpr auto kPerPass = std::chrono::milliseconds(10);

  void pass_began() noexcept {
    spent_ = Clock::duration::zero();
    deferred_ = 0;
  }
  // False: leave this connection's handshake for a later pass (defer() counts it).
  bool may_step() const noexcept { return spent_ < kPerPass; }
  void spent(Clock::duration d) noexcept { spent_ += d; }
  void defer() noexcept { ++deferred_; }
  // Handshakes that were ready in this pass and waited for a later one.
  std::uint32_t deferred() const noexcept { return deferred_; }

 private:
  Clock::duration spent_{};
  std::uint32_t deferred_ = 0;
};

}  // namespace iotsocket::worker
