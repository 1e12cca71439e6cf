// SIGHUP (issue 6): the master checks the new config and certificate in full; on success
// new handshakes, on every worker, get the new certificate while connected devices go on
// undisturbed; on any failure the log names the cause and the old certificate stays.
// Which certificate a handshake got is told by its public-key pin, as iotsocket-client
// --print-pin reports it and as the openssl command computes it from the file.
#include <signal.h>

#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <string>

#include "tests/e2e/harness.hpp"

namespace iotsocket::e2e {
namespace {

constexpr std::uint64_t kId = 1400000000;
const std::string kKey = "reload-test-key-0001";

class ReloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_.add_devices(kId, 2, kKey);
    server_.start();
    reader_.emplace(server_.inbound_fifo());
    old_pin_ = file_pin("cert.pem");
  }

  std::string file_pin(const std::string& cert) const { return openssl_pin(server_.dir() + "/" + cert); }

  // The pins that `handshakes` new connections were served. After each probe a connection
  // is held open, so that the master (which hands a connection to the least-loaded worker)
  // sends the next probe to another worker: the probes reach every worker.
  std::set<std::string> served_pins(int handshakes = 6) const {
    std::set<std::string> pins;
    std::vector<Device> held;
    for (int i = 0; i < handshakes; ++i) {
      RunResult r = run_command({binary("iotsocket-client"), "--host", "127.0.0.1", "--port",
                                 std::to_string(server_.port()), "--insecure", "--print-pin"});
      EXPECT_EQ(r.exit_code, 0) << r.err;
      pins.insert(r.out.substr(0, r.out.find('\n')));
      held.emplace_back(server_.port());
    }
    return pins;
  }

  void make_pair(const std::string& cert, const std::string& key) const {
    make_certificate(server_.dir() + "/" + cert, server_.dir() + "/" + key, 365);
  }

  // Sends SIGHUP and waits for the master to finish with it (success or refusal).
  void reload(std::string_view outcome) {
    const std::size_t before = server_.count_in_log(outcome);
    ASSERT_EQ(::kill(server_.pid(), SIGHUP), 0);
    const auto deadline = Clock::now() + 10s;
    while (server_.count_in_log(outcome) == before && Clock::now() < deadline) {
      std::this_thread::sleep_for(20ms);
    }
    ASSERT_GT(server_.count_in_log(outcome), before) << server_.log();
  }

  // Waits until every worker has taken the new certificate (`reloads` of them so far).
  void wait_for_workers(std::size_t reloads) const {
    const auto deadline = Clock::now() + 10s;
    while (server_.count_in_log("reload: new handshakes use") < reloads && Clock::now() < deadline) {
      std::this_thread::sleep_for(20ms);
    }
    ASSERT_EQ(server_.count_in_log("reload: new handshakes use"), reloads) << server_.log();
  }

  TestServer server_;
  std::optional<InboundReader> reader_;
  std::string old_pin_;
};

TEST_F(ReloadTest, NewHandshakesGetTheNewCertificateWhileConnectedDevicesGoOn) {
  Device device(server_.port());
  ASSERT_TRUE(device.send_frame(protocol::DeviceId{kId}, kKey, "before the reload"));
  ASSERT_EQ(reader_->read(1).size(), 1u) << server_.log();
  EXPECT_EQ(served_pins(), std::set<std::string>{old_pin_});

  make_pair("cert.pem", "key.pem");  // a new key: a new pin
  const std::string new_pin = file_pin("cert.pem");
  ASSERT_NE(new_pin, old_pin_);
  reload("reload: certificate");
  wait_for_workers(2);

  EXPECT_EQ(served_pins(), std::set<std::string>{new_pin}) << server_.log();
  // The device connected before the reload keeps its connection and its frames arrive.
  ASSERT_TRUE(device.send_frame(protocol::DeviceId{kId}, kKey, "after the reload"));
  auto records = reader_->read(1);
  ASSERT_EQ(records.size(), 1u) << server_.log();
  EXPECT_EQ(records[0].payload, "after the reload");
  EXPECT_FALSE(device.wait_closed(300ms));
}

TEST_F(ReloadTest, ABrokenCertificateIsRefusedAndTheOldOneStays) {
  std::ofstream(server_.dir() + "/cert.pem") << "-----BEGIN CERTIFICATE-----\nnot base64\n";
  reload("reload refused");
  EXPECT_NE(server_.log().find("reload refused, the running certificate stays: tls: cannot load "
                               "certificate " + server_.dir() + "/cert.pem"),
            std::string::npos)
      << server_.log();
  EXPECT_EQ(served_pins(), std::set<std::string>{old_pin_});
  // --check-config says the same.
  RunResult check = run_command({binary("iotsocketd"), "--check-config", "--config", server_.config_path()});
  EXPECT_EQ(check.exit_code, 1);
  EXPECT_NE(check.err.find("cannot load certificate " + server_.dir() + "/cert.pem"), std::string::npos)
      << check.err;
}

TEST_F(ReloadTest, AKeyThatDoesNotMatchIsRefusedAndTheOldOneStays) {
  make_pair("other-cert.pem", "key.pem");  // key.pem now belongs to another certificate
  reload("reload refused");
  EXPECT_NE(server_.log().find("does not match certificate " + server_.dir() + "/cert.pem"),
            std::string::npos)
      << server_.log();
  EXPECT_EQ(served_pins(), std::set<std::string>{old_pin_});
}

TEST_F(ReloadTest, AConfigWithATypoIsRefusedNamingFileLineAndKey) {
  make_pair("cert.pem", "key.pem");  // would be taken, were the config good
  std::ofstream(server_.config_path(), std::ios::app) << "timeouts_idle: 90s\n";
  reload("reload refused");
  EXPECT_NE(server_.log().find("reload refused, the running settings stay: " + server_.config_path() + ":"),
            std::string::npos)
      << server_.log();
  EXPECT_NE(server_.log().find("timeouts_idle"), std::string::npos);
  EXPECT_EQ(served_pins(), std::set<std::string>{old_pin_});
  // Still serving: a device logs in and its frame arrives.
  Device device(server_.port());
  ASSERT_TRUE(device.send_frame(protocol::DeviceId{kId + 1}, kKey, "still serving"));
  EXPECT_EQ(reader_->read(1).size(), 1u) << server_.log();
}

TEST_F(ReloadTest, ASettingThatNeedsARestartIsNamedInTheLog) {
  std::ofstream(server_.config_path(), std::ios::app) << "protocol: {time_tolerance: 5s}\n";
  reload("reload: certificate");
  EXPECT_NE(server_.log().find("reload: protocol changed in " + server_.config_path() +
                               "; it takes effect at the next restart"),
            std::string::npos)
      << server_.log();
}

}  // namespace
}  // namespace iotsocket::e2e
