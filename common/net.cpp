#include "common/net.hpp"

#include <arpa/inet.h>

#include <cstring>
#include <string_view>

namespace iotsocket {

std::string PeerAddress::to_string() const {
  char host[INET6_ADDRSTRLEN] = "?";
  unsigned port = 0;
  if (storage.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&storage);
    ::inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    port = ntohs(in->sin_port);
    return std::string(host) + ":" + std::to_string(port);
  }
  if (storage.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&storage);
    ::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    port = ntohs(in6->sin6_port);
    return "[" + std::string(host) + "]:" + std::to_string(port);
  }
  if (storage.ss_family == AF_UNIX) return "unix";
  return "unknown";
}

IpKey ip_key_of(const PeerAddress& peer) noexcept {
  IpKey key;
  if (peer.storage.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&peer.storage);
    key.bytes[10] = 0xff;
    key.bytes[11] = 0xff;
    std::memcpy(&key.bytes[12], &in->sin_addr, 4);
  } else if (peer.storage.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&peer.storage);
    std::memcpy(key.bytes.data(), &in6->sin6_addr, 16);
  }
  return key;
}

std::size_t IpKeyHash::operator()(const IpKey& key) const noexcept {
  return std::hash<std::string_view>{}(
      std::string_view(reinterpret_cast<const char*>(key.bytes.data()), key.bytes.size()));
}

}  // namespace iotsocket
