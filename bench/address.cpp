#include "bench/address.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

namespace iotsocket::bench {
namespace {

constexpr std::uint32_t kLoopbackNet = 0x7F000000;

bool in_loopback_range(std::uint32_t a) {
  return (a & 0xFF000000) == kLoopbackNet && a != kLoopbackNet && a != 0x7FFFFFFF;
}

std::string not_loopback(std::string_view host) {
  return "--host " + std::string(host) +
         ": iotsocket-bench connects to loopback only (a numeric address in 127.0.0.0/8, "
         "or ::1)";
}

Expected<std::uint32_t, std::string> parse_source_ipv4(std::string_view text) {
  in_addr a{};
  const std::string s(text);
  if (inet_pton(AF_INET, s.c_str(), &a) != 1) {
    return Unexpected{"--source-ips: '" + s + "' is not an IPv4 address"};
  }
  const std::uint32_t v = ntohl(a.s_addr);
  if (!in_loopback_range(v)) {
    return Unexpected{"--source-ips: " + s + " is outside 127.0.0.1..127.255.255.254 (loopback only)"};
  }
  return v;
}

template <class SockAddr>
Target make_target(const SockAddr& sa, int family) {
  Target t;
  std::memcpy(&t.addr, &sa, sizeof sa);
  t.len = sizeof sa;
  t.family = family;
  return t;
}

}  // namespace

Expected<Target, std::string> loopback_target(std::string_view host, std::uint16_t port) {
  const std::string s(host);
  in_addr a4{};
  in6_addr a6{};
  if (inet_pton(AF_INET, s.c_str(), &a4) == 1) {
    if (!in_loopback_range(ntohl(a4.s_addr))) return Unexpected{not_loopback(host)};
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(port);
    sin.sin_addr = a4;
    return make_target(sin, AF_INET);
  }
  if (inet_pton(AF_INET6, s.c_str(), &a6) == 1) {
    if (!IN6_IS_ADDR_LOOPBACK(&a6)) return Unexpected{not_loopback(host)};
    sockaddr_in6 sin6{};
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(port);
    sin6.sin6_addr = a6;
    return make_target(sin6, AF_INET6);
  }
  return Unexpected{not_loopback(host)};
}

Expected<SourceRange, std::string> parse_source_ips(std::string_view text) {
  if (text.empty()) return SourceRange{};
  if (text.find_first_not_of("0123456789") == std::string_view::npos) {
    std::uint32_t n = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    const std::uint32_t most = kLastSourceIp - kFirstSourceIp + 1;
    if (ec != std::errc{} || end != text.data() + text.size() || n == 0 || n > most) {
      return Unexpected{"--source-ips: a count must be 1.." + std::to_string(most)};
    }
    return SourceRange{kFirstSourceIp, n};
  }
  const auto dash = text.find('-');
  const auto first = parse_source_ipv4(text.substr(0, dash));
  if (!first) return Unexpected{first.error()};
  if (dash == std::string_view::npos) return SourceRange{*first, 1};
  const auto last = parse_source_ipv4(text.substr(dash + 1));
  if (!last) return Unexpected{last.error()};
  if (*last < *first) {
    return Unexpected{"--source-ips: the range " + std::string(text) + " runs backwards"};
  }
  return SourceRange{*first, *last - *first + 1};
}

std::string format_ipv4(std::uint32_t host_order) {
  in_addr a{};
  a.s_addr = htonl(host_order);
  char buf[INET_ADDRSTRLEN] = {};
  inet_ntop(AF_INET, &a, buf, sizeof buf);
  return buf;
}

}  // namespace iotsocket::bench
