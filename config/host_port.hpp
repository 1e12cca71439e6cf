// "ADDRESS:PORT" as one string (metrics.listen): "127.0.0.1:9100", "[::1]:9100". The
// address is an IP literal, IPv6 in brackets; the port 0 to 65535 (0: the kernel picks).
#pragma once

#include <optional>
#include <string_view>

#include "config/config.hpp"

namespace iotsocket::config {

std::optional<ListenAddress> parse_host_port(std::string_view text);

}  // namespace iotsocket::config
