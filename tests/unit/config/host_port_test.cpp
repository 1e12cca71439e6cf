// "ADDRESS:PORT" strings (metrics.listen), table-driven.
#include <gtest/gtest.h>

#include "config/host_port.hpp"

namespace iotsocket::config {
namespace {

TEST(HostPort, ParsesIpv4AndBracketedIpv6) {
  struct Case {
    const char* text;
    const char* address;
    std::uint16_t port;
  };
  const Case good[] = {{"127.0.0.1:9100", "127.0.0.1", 9100},
                       {"0.0.0.0:0", "0.0.0.0", 0},
                       {"[::1]:65535", "::1", 65535},
                       {"[2001:db8::7]:80", "2001:db8::7", 80}};
  for (const Case& c : good) {
    const auto parsed = parse_host_port(c.text);
    ASSERT_TRUE(parsed) << c.text;
    EXPECT_EQ(parsed->address, c.address) << c.text;
    EXPECT_EQ(parsed->port, c.port) << c.text;
  }
}

TEST(HostPort, RefusesWhatIsNotAnAddressAndAPort) {
  for (const char* text : {"", ":", "127.0.0.1", "127.0.0.1:", ":9100", "localhost:9100",
                           "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:9x", "::1:9100",
                           "[127.0.0.1]:9100", "[::1]", "[::1:9100", "127.0.0.1:+80"}) {
    EXPECT_FALSE(parse_host_port(text)) << text;
  }
}

}  // namespace
}  // namespace iotsocket::config
