#include "master/listeners.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <cerrno>
#include <cstring>

#include "common/net.hpp"

namespace iotsocket::master {
namespace {

constexpr int kBacklog = 4096;  // the kernel caps it at net.core.somaxconn

Expected<PeerAddress, std::string> parse_address(const config::ListenAddress& entry) {
  PeerAddress a;
  auto* in = reinterpret_cast<sockaddr_in*>(&a.storage);
  auto* in6 = reinterpret_cast<sockaddr_in6*>(&a.storage);
  if (::inet_pton(AF_INET, entry.address.c_str(), &in->sin_addr) == 1) {
    in->sin_family = AF_INET;
    in->sin_port = htons(entry.port);
    a.length = sizeof(sockaddr_in);
  } else if (::inet_pton(AF_INET6, entry.address.c_str(), &in6->sin6_addr) == 1) {
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(entry.port);
    a.length = sizeof(sockaddr_in6);
  } else {
    return Unexpected{"listen address " + entry.address + " is not an IPv4 or IPv6 literal"};
  }
  return a;
}

Unexpected<std::string> failed(const std::string& what, const config::ListenAddress& entry) {
  return Unexpected{what + " for " + entry.address + " port " + std::to_string(entry.port) +
                    " failed: " + std::strerror(errno)};
}

}  // namespace

Expected<std::vector<Listener>, std::string> bind_listeners(
    const std::vector<config::ListenAddress>& entries) {
  std::vector<Listener> out;
  for (const auto& entry : entries) {
    auto address = parse_address(entry);
    if (!address) return Unexpected{address.error()};
    const int family = address->storage.ss_family;
    Fd fd(::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd) return failed("socket()", entry);
    int on = 1;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    if (family == AF_INET6) ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
    if (::bind(fd.get(), address->sa(), address->length) != 0) return failed("bind()", entry);
    if (::listen(fd.get(), kBacklog) != 0) return failed("listen()", entry);
    PeerAddress bound;
    bound.length = sizeof bound.storage;
    ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&bound.storage), &bound.length);
    out.push_back(Listener{std::move(fd), bound.to_string()});
  }
  return out;
}

}  // namespace iotsocket::master
