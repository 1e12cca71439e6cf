// Epoll: owns one epoll instance (through Fd). Registrations carry a 64-bit tag that the
// loop maps back to what it watches; a failed epoll_ctl is returned as errno.
#pragma once

#include <sys/epoll.h>

#include <cerrno>
#include <cstdint>

#include "common/fd.hpp"

namespace iotsocket::bench {

class Epoll {
 public:
  Epoll() : fd_(::epoll_create1(EPOLL_CLOEXEC)) {}

  bool valid() const noexcept { return fd_.valid(); }

  // 0 or errno.
  int add(int fd, std::uint32_t events, std::uint64_t tag) noexcept {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = tag;
    return ::epoll_ctl(fd_.get(), EPOLL_CTL_ADD, fd, &ev) == 0 ? 0 : errno;
  }

  // Number of events (0 on timeout or EINTR), or -1 with errno on failure.
  int wait(epoll_event* events, int max, int timeout_ms) noexcept {
    const int n = ::epoll_wait(fd_.get(), events, max, timeout_ms);
    return (n < 0 && errno == EINTR) ? 0 : n;
  }

 private:
  Fd fd_;
};

}  // namespace iotsocket::bench
