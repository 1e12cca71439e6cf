#include "config/host_port.hpp"

#include <arpa/inet.h>

#include <string>

#include "config/units.hpp"

namespace iotsocket::config {
namespace {

std::optional<std::uint16_t> parse_port(std::string_view text) {
  const auto value = parse_unsigned(text);
  if (!value || *value > 65535) return std::nullopt;
  return static_cast<std::uint16_t>(*value);
}

bool is_literal(int family, const std::string& address) {
  unsigned char buffer[sizeof(in6_addr)];
  return ::inet_pton(family, address.c_str(), buffer) == 1;
}

}  // namespace

std::optional<ListenAddress> parse_host_port(std::string_view text) {
  const auto colon = text.rfind(':');
  if (colon == std::string_view::npos) return std::nullopt;
  const auto port = parse_port(text.substr(colon + 1));
  if (!port) return std::nullopt;
  std::string_view host = text.substr(0, colon);
  int family = AF_INET;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
    family = AF_INET6;
  }
  std::string address(host);
  if (!is_literal(family, address)) return std::nullopt;
  return ListenAddress{std::move(address), *port};
}

}  // namespace iotsocket::config
