// SIGHUP (issue 6): the master checks the new config and certificate in full; on success
// new handshakes, on every worker, get the new certificate while connected devices go on
// undisturbed; on any failure the log names the cause and the old certificate stays.
// Which certificate a handshake got is told by its public-key pin, as iotsocket-client
// --print-pin reports it and as the openssl command computes it from the file.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <sstream>
#include <string>
#include <thread>

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
    server_.wait_for_log_count(outcome, before + 1);
    ASSERT_GT(server_.count_in_log(outcome), before) << server_.log();
  }

  // Waits until every worker has taken the new certificate (`reloads` of them so far).
  void wait_for_workers(std::size_t reloads) const {
    server_.wait_for_log_count("reload: new handshakes use", reloads);
    ASSERT_EQ(server_.count_in_log("reload: new handshakes use"), reloads) << server_.log();
    // The master says the reload is done only once every worker has answered.
    ASSERT_TRUE(server_.wait_for_log("reload: done, every worker has taken it")) << server_.log();
    const std::string log = server_.log();
    EXPECT_GT(log.rfind("reload: done, every worker has taken it"), log.rfind("reload: new handshakes use"));
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

// Issue 16, item 7b: a directory as the key is named as one (it once read as "an
// encrypted key is not supported").
TEST_F(ReloadTest, ADirectoryAsTheKeyIsRefusedAsADirectoryAndTheOldOneStays) {
  const std::string key = server_.dir() + "/key.pem";
  std::filesystem::remove(key);
  std::filesystem::create_directory(key);
  reload("reload refused");
  EXPECT_NE(server_.log().find("reload refused, the running certificate stays: tls: private key " + key +
                               " is a directory; expected a PEM file"),
            std::string::npos)
      << server_.log();
  EXPECT_EQ(server_.log().find("encrypted"), std::string::npos) << server_.log();
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
  std::ofstream(server_.config_path(), std::ios::app) << "push: {offline_db: elsewhere.db}\n";
  reload("reload: certificate");
  EXPECT_NE(server_.log().find("reload: push.offline_db changed in " + server_.config_path() +
                               "; it takes effect at the next restart"),
            std::string::npos)
      << server_.log();
}

}  // namespace
}  // namespace iotsocket::e2e

namespace iotsocket::e2e {
namespace {

// The settings a reload changes besides the certificate: the registry file and the
// connection caps take effect at once, and a device connected before goes on.
TEST(ReloadSettings, TheRegistryAndTheLimitsChangeWhileAConnectedDeviceGoesOn) {
  ServerOptions options;
  options.workers = 2;
  TestServer server(options);
  server.add_devices(kId, 2, kKey);  // in devices.db
  server.start();
  InboundReader reader(server.inbound_fifo());
  Device before(server.port(), true, "127.0.0.7");
  ASSERT_TRUE(before.send_frame(protocol::DeviceId{kId}, kKey, "before"));
  ASSERT_EQ(reader.read(1).size(), 1u) << server.log();

  options.devices = "{sqlite: devices-2.db}";
  options.limits = "{max_connections: 10000, per_ip: 2}";
  server.rewrite_config(options);
  server.add_devices(kId + 5, 1, kKey);  // only in devices-2.db
  ASSERT_EQ(::kill(server.pid(), SIGHUP), 0);
  ASSERT_TRUE(server.wait_for_log("reload: limits.per_ip changed; in effect now")) << server.log();
  EXPECT_TRUE(server.wait_for_log("reload: devices.sqlite changed; in effect now")) << server.log();
  server.wait_for_log_count("reload: settings applied", 2);
  ASSERT_EQ(server.count_in_log("reload: settings applied"), 2u) << server.log();
  ASSERT_TRUE(server.wait_for_log("reload: done, every worker has taken it")) << server.log();

  // The new registry: its device logs in, a device only in the old one is unknown now.
  Device added(server.port(), true, "127.0.0.8");
  ASSERT_TRUE(added.send_frame(protocol::DeviceId{kId + 5}, kKey, "from the new registry"));
  auto records = reader.read(1);
  ASSERT_EQ(records.size(), 1u) << server.log();
  EXPECT_EQ(records[0].device.value, kId + 5);
  Device gone(server.port(), true, "127.0.0.9");
  gone.send_frame(protocol::DeviceId{kId + 1}, kKey, "from the old registry");
  EXPECT_TRUE(gone.wait_closed(5s));
  EXPECT_TRUE(server.wait_for_log("reason=unknown_device")) << server.log();

  // per_ip is 2 now: a third connection from 127.0.0.7 is refused at accept.
  Device second(server.port(), true, "127.0.0.7");
  EXPECT_TRUE(second.connected());
  Device third(server.port(), true, "127.0.0.7");
  EXPECT_FALSE(third.connected());
  EXPECT_TRUE(server.wait_for_log("1 over the per-address cap", 3s)) << server.log();

  // The device connected before the reload was never disturbed.
  ASSERT_TRUE(before.send_frame(protocol::DeviceId{kId}, kKey, "after"));
  records = reader.read(1);
  ASSERT_EQ(records.size(), 1u) << server.log();
  EXPECT_EQ(records[0].payload, "after");
}

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// logrotate's way: move the file, then SIGUSR1; the server writes to a new file of the
// old name, the moved one has what came before, and no line is lost or split.
TEST(LogFile, SigusrOneReopensTheLogFileAfterItWasMoved) {
  ServerOptions options;
  options.log = "{level: debug, file: server.log}";
  TestServer server(options);
  server.add_devices(kId, 1, kKey);
  // The harness reads the server's stderr, which now has nothing: start it by hand.
  const std::string log_file = server.dir() + "/server.log";
  pid_t pid = 0;
  {
    std::vector<std::string> argv{binary("iotsocketd"), "--config", server.config_path()};
    pid = ::fork();
    if (pid == 0) {
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
  }
  ASSERT_GT(pid, 0);
  auto wait_in = [](const std::string& file, std::string_view needle, std::size_t count = 1) {
    const auto deadline = Clock::now() + 10s;
    auto found = [&] {
      const std::string text = read_file(file);
      std::size_t n = 0;
      for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
      return n >= count;
    };
    while (!found() && Clock::now() < deadline) std::this_thread::sleep_for(20ms);
    return found();
  };
  ASSERT_TRUE(wait_in(log_file, " ready", 2)) << read_file(log_file);

  const std::string moved = server.dir() + "/server.log.1";
  ASSERT_EQ(::rename(log_file.c_str(), moved.c_str()), 0);
  ASSERT_EQ(::kill(pid, SIGUSR1), 0);
  ASSERT_TRUE(wait_in(log_file, "SIGUSR1: reopened " + log_file)) << read_file(moved);
  EXPECT_NE(read_file(moved).find("listening on"), std::string::npos);

  // A worker's lines go to the new file too (the stop makes both workers log).
  ASSERT_EQ(::kill(pid, SIGTERM), 0);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  const std::string after = read_file(log_file);
  EXPECT_NE(after.find("info worker 0: stopped:"), std::string::npos) << after;
  EXPECT_NE(after.find("info worker 1: stopped:"), std::string::npos) << after;
  EXPECT_NE(after.find("info master: stopped"), std::string::npos) << after;
  EXPECT_EQ(read_file(moved).find("stopped"), std::string::npos);
  // Every line is whole: it starts with the date.
  std::istringstream lines(read_file(moved) + after);
  for (std::string line; std::getline(lines, line);) {
    EXPECT_TRUE(line.size() > 24 && line.starts_with("20") && line[10] == 'T') << line;
  }
}

}  // namespace
}  // namespace iotsocket::e2e
