#include "master/service_notify.hpp"

#include <systemd/sd-daemon.h>
#include <time.h>

#include <cstdint>
#include <cstring>

#include <spdlog/spdlog.h>

namespace iotsocket::master {
namespace {

std::uint64_t monotonic_usec() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000u + static_cast<std::uint64_t>(ts.tv_nsec) / 1000u;
}

}  // namespace

ServiceNotify::ServiceNotify() {
  std::uint64_t usec = 0;
  // 0 = keep the variables: the workers are forked children, and they never notify.
  if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
    ping_every_ = std::chrono::microseconds(usec / 2);
    next_ping_ = Clock::now();
  }
}

void ServiceNotify::send(const std::string& state) {
  const int rc = sd_notify(0, state.c_str());
  if (rc < 0) spdlog::warn("sd_notify({}): {}", state.substr(0, state.find('\n')), std::strerror(-rc));
}

void ServiceNotify::ready(const std::string& status) {
  said_ready_ = true;
  last_status_ = status;
  send("READY=1\nSTATUS=" + status);
}

// systemd 253 and later want the monotonic time with RELOADING=1; older ones ignore it.
void ServiceNotify::reloading() { send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(monotonic_usec())); }

void ServiceNotify::reloaded() { send("READY=1"); }

void ServiceNotify::stopping() { send("STOPPING=1\nSTATUS=stopping"); }

void ServiceNotify::status(const std::string& text) {
  if (text == last_status_) return;
  last_status_ = text;
  send("STATUS=" + text);
}

void ServiceNotify::watchdog(Clock::time_point now) {
  if (now < next_ping_) return;
  send("WATCHDOG=1");
  next_ping_ = now + ping_every_;
}

}  // namespace iotsocket::master
