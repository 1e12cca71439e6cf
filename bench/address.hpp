// Where the bench connects to and from. The bench talks to loopback only (a load
// generator pointed at someone else's server is an attack tool), and spreads its source
// addresses over 127.0.0.0/8 so that more connections fit than one address has ports.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "common/expected.hpp"

namespace iotsocket::bench {

struct Target {
  sockaddr_storage addr{};
  socklen_t len = 0;
  int family = AF_INET;
};

// A numeric address in 127.0.0.0/8 or ::1, else an error that says the bench is
// loopback-only.
Expected<Target, std::string> loopback_target(std::string_view host, std::uint16_t port);

// A range of IPv4 source addresses; connection i is bound to at(i).
struct SourceRange {
  std::uint32_t first = 0;  // host byte order; 0 = no range, the kernel picks
  std::uint32_t count = 0;

  bool empty() const noexcept { return count == 0; }
  std::uint32_t at(std::uint64_t i) const noexcept {
    return first + static_cast<std::uint32_t>(i % count);
  }
};

inline constexpr std::uint32_t kFirstSourceIp = 0x7F000002;  // 127.0.0.2
inline constexpr std::uint32_t kLastSourceIp = 0x7FFFFFFE;   // 127.255.255.254

// "" (no range), "A-B" (inclusive), one address "A", or a count N: 127.0.0.2 and the
// N-1 addresses after it. Every address must lie in 127.0.0.1..127.255.255.254.
Expected<SourceRange, std::string> parse_source_ips(std::string_view text);

std::string format_ipv4(std::uint32_t host_order);

}  // namespace iotsocket::bench
