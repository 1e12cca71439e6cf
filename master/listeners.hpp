// The listening sockets: one per `listen` entry, bound before the workers are forked and
// kept by the master alone (workers never accept).
#pragma once

#include <string>
#include <vector>

#include "common/fd.hpp"
#include "config/config.hpp"
#include "common/expected.hpp"

namespace iotsocket::master {

struct Listener {
  Fd fd;
  std::string name;  // "127.0.0.1:9000" with the port actually bound (port 0 in tests)
};

// Binds every entry (IPv4 or IPv6 literal; an IPv6 socket takes IPv6 only, so "0.0.0.0" and
// "::" can be listed side by side). Errors name the address and the syscall.
Expected<std::vector<Listener>, std::string> bind_listeners(
    const std::vector<config::ListenAddress>& entries);

}  // namespace iotsocket::master
