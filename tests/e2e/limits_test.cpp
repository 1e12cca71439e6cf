// Deadlines and caps end to end: handshake, first frame, idle, max age; the global and the
// per-address connection caps, enforced at accept before any TLS work.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <signal.h>
#include <sys/socket.h>

#include <fstream>
#include <thread>

#include "tests/e2e/harness.hpp"

namespace iotsocket::e2e {
namespace {

using protocol::DeviceId;

constexpr std::uint64_t kId = 3000000000;
const std::string kKey = "limits-key";

// One worker, and 48 descriptors per process (prlimit applies to the forked workers too).
ServerOptions starved_of_descriptors() {
  ServerOptions o;
  o.workers = 1;
  o.wrapper = {"/usr/bin/prlimit", "--nofile=48:48", "--"};
  return o;
}

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

TEST(Caps, OutOfFileDescriptorsIsLoggedOnceAndServingResumesWhenTheyFree) {
  // 48 descriptors per process: the worker runs out after a few dozen connections (the
  // master closes its copy of each socket at hand-off, so it rarely does).
  TestServer server(starved_of_descriptors());
  server.add_devices(kId, 1, kKey);
  server.start();
  {
    std::vector<std::unique_ptr<Device>> crowd;
    for (int i = 0; i < 60; ++i) {
      crowd.push_back(std::make_unique<Device>(server.port(), /*tls=*/false, "127.0.2." + std::to_string(i + 1)));
    }
    EXPECT_TRUE(server.wait_for_log("out of file descriptors (EMFILE)", 5s) ||
                server.wait_for_log("pausing accept for 100 ms", 1s))
        << server.log();
    std::this_thread::sleep_for(500ms);
    // Once per shortage, not once per connection.
    EXPECT_EQ(server.count_in_log("out of file descriptors (EMFILE)") +
                  server.count_in_log("pausing accept"),
              1u);
  }  // the crowd leaves
  ASSERT_TRUE(server.wait_for_log("tls failed"));
  std::this_thread::sleep_for(300ms);
  InboundReader reader(server.inbound_fifo());
  Device d(server.port());
  ASSERT_TRUE(d.send_frame(DeviceId{kId}, kKey, "served after the shortage")) << server.log();
  auto records = reader.read(1);
  ASSERT_EQ(records.size(), 1u) << server.log();
  EXPECT_EQ(records[0].payload, "served after the shortage");
  // The master's counts were kept right: the dropped connections were reported closed.
  EXPECT_EQ(server.count_in_log("over max_connections"), 0u);
}

TEST(Caps, MasterOutOfDescriptorsPausesAcceptWithoutSpinningAndRecovers) {
  // A stopped worker reads nothing: the master parks the accepted sockets, holding their
  // descriptors, until it runs out (48) and must pause accepting.
  TestServer server(starved_of_descriptors());
  server.add_devices(kId, 1, kKey);
  server.start();
  std::ifstream children("/proc/" + std::to_string(server.pid()) + "/task/" +
                         std::to_string(server.pid()) + "/children");
  pid_t worker = 0;
  ASSERT_TRUE(children >> worker);
  ASSERT_EQ(::kill(worker, SIGSTOP), 0);
  {
    std::vector<Fd> crowd;  // plain TCP connects: they complete in the kernel's backlog
    for (int i = 0; i < 600; ++i) {
      Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
      sockaddr_in dst{};
      dst.sin_family = AF_INET;
      dst.sin_port = htons(server.port());
      dst.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      ASSERT_EQ(::connect(fd.get(), reinterpret_cast<sockaddr*>(&dst), sizeof dst), 0);
      crowd.push_back(std::move(fd));
    }
    EXPECT_TRUE(server.wait_for_log("pausing accept for 100 ms", 5s)) << server.log();
    // The master is not spinning: over a second it used a small share of a core.
    auto cpu_ticks = [&] {
      std::ifstream stat("/proc/" + std::to_string(server.pid()) + "/stat");
      std::string field;
      long ticks = 0;
      for (int i = 1; i <= 15 && stat >> field; ++i) {
        if (i == 14 || i == 15) ticks += std::stol(field);
      }
      return ticks;
    };
    const long before = cpu_ticks();
    std::this_thread::sleep_for(1s);
    EXPECT_LT(cpu_ticks() - before, 30) << "the master busy-loops on EMFILE";
    EXPECT_EQ(server.count_in_log("pausing accept"), 1u);  // once per burst
  }
  ASSERT_EQ(::kill(worker, SIGCONT), 0);
  std::this_thread::sleep_for(500ms);
  InboundReader reader(server.inbound_fifo());
  Device d(server.port());
  ASSERT_TRUE(d.send_frame(DeviceId{kId}, kKey, "served after the pause")) << server.log();
  auto records = reader.read(1);
  ASSERT_EQ(records.size(), 1u) << server.log();
}

TEST(Listen, BindsIpv4AndIpv6Entries) {
  ServerOptions o;
  o.listen = "[{address: 127.0.0.1, port: 0}, {address: \"::1\", port: 0}]";
  TestServer server(o);
  server.start();
  EXPECT_TRUE(server.wait_for_log("listening on [::1]:")) << server.log();
}

}  // namespace
}  // namespace iotsocket::e2e
