// systemd notification (issue 6): iotsocketd started with NOTIFY_SOCKET (as systemd does
// for Type=notify) sends READY=1 once it serves, RELOADING=1/READY=1 around SIGHUP, STATUS=
// lines as connections come and go, STOPPING=1 on SIGTERM, and WATCHDOG=1 at half of
// WATCHDOG_USEC. The test plays systemd: it binds the datagram socket and reads.
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/e2e/harness.hpp"

namespace iotsocket::e2e {
namespace {

constexpr std::uint64_t kId = 1500000000;
const std::string kKey = "notify-test-key-0001";

// The receiving end of the notification socket, as systemd holds it.
class NotifySocket {
 public:
  explicit NotifySocket(const std::string& path) : path_(path) {
    fd_.reset(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    path.copy(address.sun_path, sizeof address.sun_path - 1);
    EXPECT_EQ(::bind(fd_.get(), reinterpret_cast<sockaddr*>(&address), sizeof address), 0);
  }

  // Datagrams until one contains `needle` (returned last) or `timeout` passes.
  std::vector<std::string> until(std::string_view needle, std::chrono::milliseconds timeout = 5s) {
    std::vector<std::string> got;
    const auto deadline = Clock::now() + timeout;
    while (Clock::now() < deadline) {
      pollfd p{fd_.get(), POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      char buffer[4096];
      const ssize_t n = ::recv(fd_.get(), buffer, sizeof buffer, 0);
      if (n <= 0) continue;
      got.emplace_back(buffer, static_cast<std::size_t>(n));
      if (got.back().find(needle) != std::string::npos) return got;
    }
    return got;
  }

 private:
  std::string path_;
  Fd fd_;
};

bool ends_with_needle(const std::vector<std::string>& got, std::string_view needle) {
  return !got.empty() && got.back().find(needle) != std::string::npos;
}

class NotifyTest : public ::testing::Test {
 protected:
  // NOTIFY_SOCKET (and `extra`) only for the server this test starts.
  void start(const std::vector<std::pair<std::string, std::string>>& extra = {}) {
    notify_.emplace(server_.dir() + "/notify.sock");
    ::setenv("NOTIFY_SOCKET", (server_.dir() + "/notify.sock").c_str(), 1);
    for (const auto& [name, value] : extra) ::setenv(name.c_str(), value.c_str(), 1);
    server_.add_devices(kId, 1, kKey);
    server_.start();
    ::unsetenv("NOTIFY_SOCKET");
    for (const auto& [name, value] : extra) ::unsetenv(name.c_str());
  }

  TestServer server_;
  std::optional<NotifySocket> notify_;
};

TEST_F(NotifyTest, ReadyReloadingStatusAndStopping) {
  start();
  auto got = notify_->until("READY=1");
  ASSERT_TRUE(ends_with_needle(got, "READY=1")) << server_.log();
  EXPECT_NE(got.back().find("STATUS=0 connections, 2 of 2 workers ready"), std::string::npos)
      << got.back();

  ASSERT_EQ(::kill(server_.pid(), SIGHUP), 0);
  got = notify_->until("RELOADING=1");
  ASSERT_TRUE(ends_with_needle(got, "RELOADING=1")) << server_.log();
  EXPECT_NE(got.back().find("MONOTONIC_USEC="), std::string::npos);
  EXPECT_TRUE(ends_with_needle(notify_->until("READY=1"), "READY=1"));
  // READY=1 comes once every worker has answered (the log line is written just before).
  EXPECT_NE(server_.log().find("reload: done, every worker has taken it"), std::string::npos)
      << server_.log();

  Device device(server_.port());
  ASSERT_TRUE(device.send_frame(protocol::DeviceId{kId}, kKey, "hello"));
  EXPECT_TRUE(ends_with_needle(notify_->until("STATUS=1 connection,"), "STATUS=1 connection,"))
      << server_.log();

  const int code = server_.stop(SIGTERM);
  EXPECT_TRUE(ends_with_needle(notify_->until("STOPPING=1"), "STOPPING=1"));
  EXPECT_EQ(code, 0);
}

TEST_F(NotifyTest, TheWatchdogIsPingedAtHalfItsTimeout) {
  start({{"WATCHDOG_USEC", "1000000"}});  // 1 s: a ping every 0.5 s
  ASSERT_TRUE(ends_with_needle(notify_->until("READY=1"), "READY=1"));
  ASSERT_TRUE(ends_with_needle(notify_->until("WATCHDOG=1", 2s), "WATCHDOG=1"));
  auto last = Clock::now();
  const auto started = last;
  Clock::duration longest{};
  int pings = 0;
  while (pings < 4 && Clock::now() < started + 5s) {
    if (!ends_with_needle(notify_->until("WATCHDOG=1", 2s), "WATCHDOG=1")) continue;
    ++pings;
    longest = std::max(longest, Clock::now() - last);
    last = Clock::now();
  }
  EXPECT_EQ(pings, 4) << server_.log();
  // Every half timeout: no gap reaches the timeout (systemd would kill the service), and
  // no flood either (4 pings after the first take at least 3 half-periods... and more).
  EXPECT_LT(longest, 1s);
  EXPECT_GE(Clock::now() - started, 1500ms);
}

}  // namespace
}  // namespace iotsocket::e2e
