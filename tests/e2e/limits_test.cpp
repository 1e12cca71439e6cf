// Deadlines and caps end to end: handshake, first frame, idle, max age; the global and the
// per-address connection caps, enforced at accept before any TLS work.
#include <gtest/gtest.h>

#include <thread>

#include "tests/e2e/harness.hpp"

namespace iotsocket::e2e {
namespace {

using protocol::DeviceId;

constexpr std::uint64_t kId = 3000000000;
const std::string kKey = "limits-key";

ServerOptions short_timeouts() {
  ServerOptions o;
  o.timeouts = "{idle: 2s, handshake: 1s, first_frame: 1s, max_connection_age: 4s}";
  return o;
}

TEST(Deadlines, SilentTcpConnectionIsClosedAtTheHandshakeTimeout) {
  TestServer server(short_timeouts());
  server.start();
  Device tcp_only(server.port(), /*tls=*/false);  // connects, never says hello
  EXPECT_TRUE(tcp_only.wait_closed(5s));
  EXPECT_TRUE(server.wait_for_log("reason=handshake_timeout")) << server.log();
}

TEST(Deadlines, TlsWithoutALoginFrameIsClosedAtTheFirstFrameDeadline) {
  TestServer server(short_timeouts());
  server.start();
  Device d(server.port());
  ASSERT_TRUE(d.connected());
  EXPECT_TRUE(d.wait_closed(5s));
  EXPECT_TRUE(server.wait_for_log("reason=first_frame_timeout")) << server.log();
}

TEST(Deadlines, SilentDeviceIsClosedAtTheIdleTimeoutAndATalkingOneIsNot) {
  TestServer server(short_timeouts());
  server.add_devices(kId, 2, kKey);
  server.start();
  InboundReader reader(server.inbound_fifo());
  Device silent(server.port()), talking(server.port());
  ASSERT_TRUE(silent.send_frame(DeviceId{kId}, kKey, "hello then silence"));
  ASSERT_TRUE(talking.send_frame(DeviceId{kId + 1}, kKey, "hello, frame 0"));
  // The talking device sends a frame each 0.5 s for 3 s: past the 2 s idle timeout.
  for (int i = 1; i <= 6; ++i) {
    std::this_thread::sleep_for(500ms);
    ASSERT_TRUE(talking.send_frame(DeviceId{kId + 1}, kKey, "frame " + std::to_string(i)));
  }
  EXPECT_TRUE(silent.wait_closed(1s));
  EXPECT_TRUE(server.wait_for_log("closed device=3000000000 peer=127.0.0.1")) << server.log();
  EXPECT_TRUE(server.wait_for_log("reason=idle_timeout"));
  EXPECT_EQ(reader.read(8).size(), 8u);
  // Then max age (4 s) ends the talking one too.
  EXPECT_TRUE(talking.wait_closed(3s));
  EXPECT_TRUE(server.wait_for_log("reason=max_age")) << server.log();
}

TEST(Caps, PerAddressCapRefusesAtAcceptAndOtherAddressesAreServed) {
  ServerOptions o;
  o.limits = "{max_connections: 100, per_ip: 3}";
  TestServer server(o);
  server.add_devices(kId, 1, kKey);
  server.start();
  std::vector<std::unique_ptr<Device>> held;
  for (int i = 0; i < 3; ++i) {
    held.push_back(std::make_unique<Device>(server.port(), true, "127.0.0.5"));
    ASSERT_TRUE(held.back()->connected());
  }
  Device fourth(server.port(), true, "127.0.0.5");
  EXPECT_FALSE(fourth.connected());  // closed before the TLS handshake
  EXPECT_TRUE(server.wait_for_log("1 over the per-address cap", 3s)) << server.log();
  InboundReader reader(server.inbound_fifo());
  Device other(server.port(), true, "127.0.0.6");
  ASSERT_TRUE(other.send_frame(DeviceId{kId}, kKey, "another address"));
  EXPECT_EQ(reader.read(1).size(), 1u);
  // A slot frees when a connection closes.
  held.pop_back();
  ASSERT_TRUE(server.wait_for_log("reason=peer_closed"));
  std::this_thread::sleep_for(200ms);
  Device again(server.port(), true, "127.0.0.5");
  EXPECT_TRUE(again.connected());
}

TEST(Caps, MaxConnectionsRefusesAtAccept) {
  ServerOptions o;
  o.limits = "{max_connections: 4, per_ip: 4}";
  TestServer server(o);
  server.start();
  std::vector<std::unique_ptr<Device>> held;
  for (int i = 0; i < 4; ++i) {
    held.push_back(std::make_unique<Device>(server.port(), true, "127.0.1." + std::to_string(i + 1)));
    ASSERT_TRUE(held.back()->connected());
  }
  Device fifth(server.port(), true, "127.0.1.9");
  EXPECT_FALSE(fifth.connected());
  EXPECT_TRUE(server.wait_for_log("1 over max_connections", 3s)) << server.log();
}

}  // namespace
}  // namespace iotsocket::e2e
