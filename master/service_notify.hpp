// systemd's readiness protocol (sd_notify(3), from libsystemd): READY=1 once listening with
// every worker ready, RELOADING=1 ... READY=1 around a reload, STOPPING=1, a STATUS= line,
// and the watchdog's WATCHDOG=1 when the unit sets WatchdogSec=. All of it does nothing
// when NOTIFY_SOCKET is not set (not under systemd, or Type= is not notify).
#pragma once

#include <chrono>
#include <string>

namespace iotsocket::master {

class ServiceNotify {
 public:
  using Clock = std::chrono::steady_clock;

  ServiceNotify();  // reads WATCHDOG_USEC (only when it names this process)

  void ready(const std::string& status);
  // Whether ready() has been said: RELOADING=1 and STATUS= only after it.
  bool said_ready() const noexcept { return said_ready_; }
  void reloading();
  void reloaded();
  void stopping();
  // Sends STATUS= when it differs from the last one sent.
  void status(const std::string& text);

  // Pings when half the watchdog timeout has passed since the last ping.
  void watchdog(Clock::time_point now);
  // When watchdog() wants to be called next (Clock::time_point::max() without one).
  Clock::time_point next_watchdog() const noexcept { return next_ping_; }

 private:
  void send(const std::string& state);

  Clock::duration ping_every_{};
  Clock::time_point next_ping_ = Clock::time_point::max();
  std::string last_status_;
  bool said_ready_ = false;
};

}  // namespace iotsocket::master
