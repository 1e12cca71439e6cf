// `iotsocketctl devices show ID` against the built iotsocketd: a device with a clock 1.5 s
// off logs in over real TLS, and what the operator reads back (worker, peer, skew, last
// disconnect reason, sessions, refused logins) comes from the live shared device table and
// the registry, with the server running and after it stopped.
#include <chrono>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>

#include <gtest/gtest.h>

#include "tests/e2e/harness.hpp"

namespace iotsocket::e2e {
namespace {

using protocol::DeviceId;

constexpr std::uint64_t kId = 1300000000;
const std::string kIdText = "1300000000";
const std::string kKey = "show-test-key-0001";
constexpr auto kSkew = std::chrono::milliseconds(1500);  // within the 3 s tolerance

using Facts = std::map<std::string, std::string>;

// `key: value` lines into a map; every line must be one.
Facts parse(const std::string& out) {
  Facts facts;
  std::istringstream in(out);
  std::string line;
  while (std::getline(in, line)) {
    const auto colon = line.find(':');
    EXPECT_NE(colon, std::string::npos) << "not a `key: value` line: " << line;
    if (colon == std::string::npos) continue;
    const auto value = line.find_first_not_of(' ', colon + 1);
    facts[line.substr(0, colon)] = value == std::string::npos ? "" : line.substr(value);
  }
  return facts;
}

int as_int(const std::string& text) { return std::atoi(text.c_str()); }

protocol::Time device_clock(std::chrono::milliseconds offset) {
  return protocol::to_time(std::chrono::system_clock::now() + offset);
}

class ShowTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.add_devices(kId, 1, kKey);
    server_.start();
    reader_.emplace(server_.inbound_fifo());
  }

  Facts show() {
    const RunResult r = server_.ctl({"devices", "show", kIdText});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return parse(r.out);
  }

  // A device whose clock is `offset` off logs in; returns once its frame was accepted.
  std::unique_ptr<Device> log_in(std::chrono::milliseconds offset) {
    return logged_in(server_, *reader_, kId, kKey, device_clock(offset));
  }

  TestServer server_;
  std::optional<InboundReader> reader_;
};

// The skew the server saw is the offset less the frame's way to the server (at most a
// second allowed here: generous for a loaded machine, still far from the other sign).
void expect_skew(const std::string& text, std::chrono::milliseconds offset) {
  const int ms = as_int(text);
  EXPECT_LE(ms, offset.count()) << text;
  EXPECT_GE(ms, offset.count() - 1000) << text;
}

TEST_F(ShowTest, ConnectedThenDisconnectedTwiceThenServerStopped) {
  Facts f = show();
  EXPECT_EQ(f["device"], kIdText);
  EXPECT_EQ(f["enabled"], "yes");
  EXPECT_EQ(f["state"], "not connected");
  EXPECT_EQ(f["last_seen"], "never");
  EXPECT_EQ(f["sessions"], "0");
  EXPECT_EQ(f["last_disconnect_reason"], "-");
  EXPECT_EQ(f["refused_logins"], "0");

  // Session 1: the device's clock is 1.5 s behind.
  auto d = log_in(-kSkew);
  f = show();
  EXPECT_EQ(f["state"], "connected");
  ASSERT_TRUE(f["worker"] == "0" || f["worker"] == "1") << f["worker"];
  EXPECT_EQ(f["worker_pid"], std::to_string(server_.worker_pid(static_cast<unsigned>(as_int(f["worker"])))));
  EXPECT_TRUE(std::regex_match(f["peer"], std::regex(R"(127\.0\.0\.1:\d+)"))) << f["peer"];
  EXPECT_TRUE(std::regex_match(f["connected_since"], std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)")))
      << f["connected_since"];
  expect_skew(f["skew_ms"], -kSkew);
  EXPECT_EQ(f["skew_max_ms"], f["skew_ms"]);  // one frame so far
  const std::string first_peer = f["peer"];
  d.reset();  // closes: peer_closed
  ASSERT_TRUE(server_.wait_for_log("reason=peer_closed")) << server_.log();

  f = show();
  EXPECT_EQ(f["state"], "not connected");
  EXPECT_EQ(f["worker"], "-");
  EXPECT_EQ(f["skew_ms"], "-");
  EXPECT_EQ(f["sessions"], "1");
  EXPECT_EQ(f["last_disconnect_reason"], "peer_closed");
  EXPECT_EQ(f["last_peer"], first_peer);
  EXPECT_NE(f["last_seen"], "never");
  EXPECT_NE(f["last_login"], "-");
  expect_skew(f["last_session_skew_ms"], -kSkew);

  // Session 2: now 1.5 s ahead, two frames.
  d = log_in(kSkew);
  ASSERT_TRUE(d->send_frame(DeviceId{kId}, kKey, "second-frame", device_clock(kSkew)));
  ASSERT_EQ(reader_->read(1).size(), 1u) << server_.log();
  f = show();
  EXPECT_EQ(f["state"], "connected");
  expect_skew(f["skew_ms"], kSkew);
  expect_skew(f["skew_max_ms"], kSkew);
  EXPECT_EQ(f["sessions"], "1");  // the one that ended
  d.reset();
  ASSERT_TRUE(server_.wait_for_log_count("reason=peer_closed", 2)) << server_.log();
  f = show();
  EXPECT_EQ(f["sessions"], "2");
  EXPECT_EQ(f["last_disconnect_reason"], "peer_closed");
  expect_skew(f["last_session_skew_ms"], kSkew);

  // Without a server: what the registry keeps, and says so.
  ASSERT_EQ(server_.stop(), 0);
  f = show();
  EXPECT_EQ(f["state"], "not connected (server not running)");
  EXPECT_EQ(f["refused_logins"], "-");
  EXPECT_EQ(f["sessions"], "2");
  EXPECT_EQ(f["last_disconnect_reason"], "peer_closed");
  expect_skew(f["last_session_skew_max_ms"], kSkew);
}

TEST_F(ShowTest, RefusedLoginsAreCountedWithTheLastReason) {
  {
    Device d(server_.port());
    ASSERT_TRUE(d.send_frame(DeviceId{kId}, "not-the-key", "hello-server"));
    EXPECT_TRUE(d.wait_closed());
  }
  ASSERT_TRUE(server_.wait_for_log("reason=wrong_key")) << server_.log();
  Facts f = show();
  EXPECT_EQ(f["refused_logins"], "1");
  EXPECT_EQ(f["last_refused_reason"], "wrong_key");
  EXPECT_TRUE(std::regex_match(f["last_refused_at"], std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ)")))
      << f["last_refused_at"];
  EXPECT_EQ(f["sessions"], "0");  // a refusal is no session

  {
    Device d(server_.port());  // a clock 10 s ahead: beyond the 3 s tolerance
    ASSERT_TRUE(d.send_frame(DeviceId{kId}, kKey, "hello-server", device_clock(std::chrono::seconds(10))));
    EXPECT_TRUE(d.wait_closed());
  }
  ASSERT_TRUE(server_.wait_for_log("reason=time_skew")) << server_.log();
  f = show();
  EXPECT_EQ(f["refused_logins"], "2");
  EXPECT_EQ(f["last_refused_reason"], "time_skew");
  EXPECT_EQ(f["state"], "not connected");
}

// A master killed by SIGKILL leaves its segment behind, naming devices as held: show does
// not take them for connected.
TEST_F(ShowTest, AKilledServerIsNotRunning) {
  auto d = log_in(std::chrono::milliseconds(0));
  ASSERT_EQ(show()["state"], "connected");
  server_.stop(SIGKILL);
  Facts f = show();
  EXPECT_EQ(f["state"], "not connected (server not running)");
  EXPECT_EQ(f["worker"], "-");
}

TEST_F(ShowTest, UnknownDeviceFailsAndABadIdIsAUsageError) {
  RunResult r = server_.ctl({"devices", "show", "1399999999"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("no device 1399999999"), std::string::npos) << r.err;

  r = server_.ctl({"devices", "show", "12ab"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("is not a device ID"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace iotsocket::e2e
