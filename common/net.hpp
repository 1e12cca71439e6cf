// Socket addresses as the processes log and count them.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <array>
#include <cstdint>
#include <functional>
#include <string>

namespace iotsocket {

// A peer's address and port, IPv4 or IPv6; trivially copyable so that it can ride in a
// channel message.
struct PeerAddress {
  sockaddr_storage storage{};
  socklen_t length = 0;

  const sockaddr* sa() const noexcept { return reinterpret_cast<const sockaddr*>(&storage); }
  // "203.0.113.7:51234" or "[2001:db8::1]:51234"
  std::string to_string() const;
};

// The source address alone (no port): the key of the per-IP connection cap. IPv4 is kept
// as an IPv4-mapped IPv6 address, so the two families share one map.
struct IpKey {
  std::array<std::uint8_t, 16> bytes{};
  friend bool operator==(const IpKey&, const IpKey&) = default;
};
IpKey ip_key_of(const PeerAddress& peer) noexcept;

struct IpKeyHash {
  std::size_t operator()(const IpKey& key) const noexcept;
};

}  // namespace iotsocket
