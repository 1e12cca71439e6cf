// The device client (issue 5) against the built iotsocketd: libiotsocket-client in this
// process and the iotsocket-client command as a child, with real TLS, certificates, FIFOs
// and SQLite. What the server cannot be made to do (send a stale or reused TIME) is tested
// against a scripted TLS server in tests/unit/client/.
#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "iotsocket/client.hpp"
#include "tests/e2e/harness.hpp"

namespace iotsocket::e2e {
namespace {

namespace cl = iotsocket::client;

constexpr std::uint64_t kId = 1300000000;
const std::string kKey = "client-test-key-0001";

std::string id_text(std::uint64_t id = kId) { return std::to_string(id); }

// A certificate the server does not have, for "does not match" cases.
std::string other_certificate(const std::string& dir) {
  make_certificate(dir + "/other-cert.pem", dir + "/other-key.pem");
  return dir + "/other-cert.pem";
}

class ClientTest : public ::testing::Test {
 protected:
  explicit ClientTest(ServerOptions options = {}) : server_(std::move(options)) {}

  void SetUp() override {
    server_.add_devices(kId, 5, kKey);
    server_.start();
    reader_.emplace(server_.inbound_fifo());
  }

  // Options for device `id`, trusting the server by its certificate file (the legacy way),
  // with short waits so that the tests are quick.
  cl::Options options(std::uint64_t id = kId) const {
    cl::Options o;
    o.host = "127.0.0.1";
    o.port = server_.port();
    o.device_id = id_text(id);
    o.key = kKey;
    o.cert_file = server_.dir() + "/cert.pem";
    o.login_grace = 300ms;
    o.backoff_initial = 100ms;
    o.backoff_max = 1s;
    return o;
  }

  std::unique_ptr<cl::Client> make(cl::Options o) {
    cl::Error error;
    auto client = cl::Client::create(std::move(o), &error);
    EXPECT_NE(client, nullptr) << error.message;
    return client;
  }

  // Runs the command with `args` after the connection options for device kId.
  RunResult command(std::vector<std::string> args, const std::string& input = "") const {
    std::vector<std::string> argv{binary("iotsocket-client"), "--host", "127.0.0.1", "--port",
                                  std::to_string(server_.port()), "--id", id_text()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv, input);
  }

  // Records from the inbound FIFO until `count` arrived (or 10 s passed): their payloads.
  std::vector<std::string> inbound_payloads(std::size_t count) {
    std::vector<std::string> payloads;
    for (const auto& r : reader_->read(count)) payloads.push_back(r.payload);
    return payloads;
  }

  TestServer server_;
  std::optional<InboundReader> reader_;
};

// Polls until `count` pushes arrived or `timeout` passed.
std::vector<std::string> poll_pushes(cl::Client& client, std::size_t count,
                                     std::chrono::milliseconds timeout = 5s) {
  std::vector<std::string> got;
  const auto deadline = Clock::now() + timeout;
  while (got.size() < count && Clock::now() < deadline) {
    cl::Event e = client.poll(100ms);
    if (e.push) got.push_back(e.push->payload);
  }
  return got;
}

TEST_F(ClientTest, FramesReachTheInboundFifoInOrder) {
  auto client = make(options());
  ASSERT_EQ(client->connect(), std::nullopt) << server_.log();
  std::vector<std::string> sent;
  for (int i = 0; i < 20; ++i) {
    sent.push_back("reading=" + std::to_string(i) + " temp=21.5");
    ASSERT_EQ(client->send(sent.back()), std::nullopt);
  }
  client->poll(200ms);
  // The login frame (the keepalive payload: nothing was queued at connect) comes first.
  std::vector<std::string> expected{"keepalive"};
  expected.insert(expected.end(), sent.begin(), sent.end());
  EXPECT_EQ(inbound_payloads(21), expected) << server_.log();
  EXPECT_EQ(client->stats().frames_sent, 21u);
}

TEST_F(ClientTest, PushesArriveByPollAndByCallback) {
  auto client = make(options());
  ASSERT_EQ(client->connect(), std::nullopt) << server_.log();
  server_.push_lines(id_text() + " led=on\n");
  EXPECT_EQ(poll_pushes(*client, 1), std::vector<std::string>{"led=on"}) << server_.log();

  std::vector<std::string> by_callback;
  client->on_push = [&](const cl::Push& p) { by_callback.push_back(p.payload); };
  server_.push_lines(id_text() + " two\\nlines\n" + id_text() + " third-push\n");
  const auto deadline = Clock::now() + 5s;
  while (by_callback.size() < 2 && Clock::now() < deadline) {
    ASSERT_EQ(client->run_for(100ms), std::nullopt);
  }
  EXPECT_EQ(by_callback, (std::vector<std::string>{"two\nlines", "third-push"}));
  EXPECT_EQ(client->stats().pushes_received, 3u);
  EXPECT_EQ(client->stats().pushes_refused, 0u);
}

TEST_F(ClientTest, TheRightPinOrCaConnects) {
  const std::string cert = server_.dir() + "/cert.pem";
  cl::Options by_pin = options(kId);
  by_pin.cert_file.clear();
  by_pin.pins = {openssl_pin(cert)};
  auto a = make(by_pin);
  ASSERT_EQ(a->connect(), std::nullopt) << server_.log();
  EXPECT_EQ(a->server_pin(), by_pin.pins[0]);

  cl::Options by_ca = options(kId + 1);
  by_ca.cert_file.clear();
  by_ca.ca_file = cert;  // self-signed: it is its own CA; its SAN holds IP 127.0.0.1
  auto b = make(by_ca);
  ASSERT_EQ(b->connect(), std::nullopt) << server_.log();
  EXPECT_TRUE(a->online());
  EXPECT_TRUE(b->online());
}

TEST_F(ClientTest, AWrongPinOrCaRefusesTheServerBeforeAnyFrame) {
  const std::string other = other_certificate(server_.dir());

  cl::Options wrong_pin = options(kId);
  wrong_pin.cert_file.clear();
  wrong_pin.pins = {openssl_pin(other)};
  auto a = make(wrong_pin);
  auto error = a->connect();
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->code, cl::ErrorCode::pin_mismatch) << error->message;
  EXPECT_TRUE(error->fatal);

  cl::Options wrong_cert_file = options(kId);
  wrong_cert_file.cert_file = other;
  auto b = make(wrong_cert_file);
  error = b->connect();
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->code, cl::ErrorCode::pin_mismatch) << error->message;

  cl::Options wrong_ca = options(kId);
  wrong_ca.cert_file.clear();
  wrong_ca.ca_file = other;
  auto c = make(wrong_ca);
  error = c->connect();
  ASSERT_TRUE(error.has_value());
  EXPECT_EQ(error->code, cl::ErrorCode::certificate_rejected) << error->message;
  EXPECT_TRUE(error->fatal);

  // A refused server got no frame: no login and no record from this device.
  EXPECT_EQ(server_.count_in_log("login device=" + protocol::to_string(protocol::DeviceId{kId})), 0u);
  EXPECT_TRUE(reader_->read(1, 300ms).empty());

  // The command says the same with exit code 4.
  RunResult r = command({"--key", kKey, "--cert", other, "--once"});
  EXPECT_EQ(r.exit_code, 4) << r.err;
  EXPECT_NE(r.err.find("pin_mismatch"), std::string::npos) << r.err;
}

TEST_F(ClientTest, AWrongKeyEndsWithAnAuthErrorAfterBackoffNotARetryStorm) {
  const auto started = Clock::now();
  RunResult r = command({"--key", "not-the-key", "--cert", server_.dir() + "/cert.pem",
                         "--auth-retries", "3", "--backoff", "200ms", "--login-grace", "500ms"});
  const auto took = Clock::now() - started;
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_NE(r.err.find("auth_refused"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("3 times in a row; giving up"), std::string::npos) << r.err;
  // Exactly three logins were tried, and between them the client waited at least half of
  // each backoff step (200 ms, then 400 ms): at least 100 + 200 ms in all.
  EXPECT_EQ(server_.count_in_log("reason=wrong_key"), 3u) << server_.log();
  EXPECT_GE(took, 300ms);
}

TEST_F(ClientTest, CommandSendsStdinLinesAndPrintsPushes) {
  // Pushed while the device is offline: they wait in the offline queue for its login.
  server_.push_lines(id_text() + " first-push\n" + id_text() + " second\\npush\n");
  RunResult r = command({"--key", kKey, "--pin", openssl_pin(server_.dir() + "/cert.pem"),
                         "--count", "2"},
                        "line one\nline two\n");
  EXPECT_EQ(r.exit_code, 0) << r.err << server_.log();
  EXPECT_EQ(r.out, "first-push\nsecond\\npush\n");  // one line each, escaped as in the FIFOs
  // The first stdin line was the login frame.
  EXPECT_EQ(inbound_payloads(2), (std::vector<std::string>{"line one", "line two"}));
}

TEST_F(ClientTest, CommandOnceExitsWhenStdinIsSentAndNamesRefusedLines) {
  RunResult r = command({"--key", kKey, "--cert", server_.dir() + "/cert.pem", "--once"},
                        "good line 1\nabc\ngood line 2");  // the last line has no newline
  EXPECT_EQ(r.exit_code, 5) << r.err;
  EXPECT_NE(r.err.find("stdin line 2 refused"), std::string::npos) << r.err;
  EXPECT_EQ(inbound_payloads(2), (std::vector<std::string>{"good line 1", "good line 2"}));

  RunResult usage = command({"--key", kKey, "--cert", server_.dir() + "/cert.pem", "--port", "x"});
  EXPECT_EQ(usage.exit_code, 2) << usage.err;
  RunResult bad_pin = command({"--key", kKey, "--pin", "sha256/short", "--once"});
  EXPECT_EQ(bad_pin.exit_code, 2) << bad_pin.err;
  EXPECT_NE(bad_pin.err.find("is not a pin"), std::string::npos) << bad_pin.err;
  RunResult help = run_command({binary("iotsocket-client"), "--help"});
  EXPECT_EQ(help.exit_code, 0);
  EXPECT_NE(help.out.find("Exit codes"), std::string::npos) << help.out;
}

// The command's user knows its flags, not the library's field names (ca_file, pins); and
// after a refused login -v says what to check, in order.
TEST_F(ClientTest, CommandErrorsNameTheFlagsAndVerboseSaysWhatToCheckAfterARefusedLogin) {
  const std::string cert = server_.dir() + "/cert.pem";
  RunResult no_trust = command({"--key", kKey, "--once"});
  EXPECT_EQ(no_trust.exit_code, 2);
  for (const char* flag : {"--cert FILE", "--ca FILE", "--pin sha256/", "--insecure"}) {
    EXPECT_NE(no_trust.err.find(flag), std::string::npos) << flag << " in " << no_trust.err;
  }
  RunResult missing_ca = command({"--key", kKey, "--ca", server_.dir() + "/missing_ca_file.pem", "--once"});
  EXPECT_EQ(missing_ca.exit_code, 2);
  EXPECT_EQ(missing_ca.err, "iotsocket-client: --ca: cannot open " + server_.dir() + "/missing_ca_file.pem\n");
  RunResult bad_pin = command({"--key", kKey, "--pin", "sha256/short", "--once"});
  EXPECT_EQ(bad_pin.exit_code, 2);
  EXPECT_NE(bad_pin.err.find("iotsocket-client: --pin: 'sha256/short' is not a pin"), std::string::npos)
      << bad_pin.err;
  RunResult both = command({"--key", kKey, "--insecure", "--cert", cert, "--once"});
  EXPECT_EQ(both.exit_code, 2);
  EXPECT_NE(both.err.find("--cert excludes --insecure"), std::string::npos) << both.err;
  for (const RunResult* r : {&no_trust, &bad_pin, &both}) {
    for (const char* field : {"ca_file", "cert_file", "pins"}) {
      EXPECT_EQ(r->err.find(field), std::string::npos) << field << " in " << r->err;
    }
  }

  RunResult quiet = command({"--key", "not-the-key", "--cert", cert, "--once"}, "hello server\n");
  EXPECT_EQ(quiet.exit_code, 3) << quiet.err;
  EXPECT_EQ(quiet.err.find("check, in this order"), std::string::npos) << quiet.err;
  RunResult verbose = command({"--key", "not-the-key", "--cert", cert, "--once", "-v"}, "hello server\n");
  EXPECT_EQ(verbose.exit_code, 3) << verbose.err;
  EXPECT_NE(verbose.err.find("iotsocket-client: info: the server does not say why it refused a login; "
                             "check, in this order: 1) this clock: no push from the server came yet"),
            std::string::npos)
      << verbose.err;
  EXPECT_NE(verbose.err.find("3) on the server, `iotsocketctl devices show " + id_text() + "`"),
            std::string::npos)
      << verbose.err;
  // And the server's answer is the one the list points to.
  const RunResult show = server_.ctl({"devices", "show", id_text()});
  EXPECT_NE(show.out.find("wrong_key"), std::string::npos) << show.out;
}

// SIGTERM ends the command at once and cleanly (exit 0), and the stdin it shared with the
// shell is blocking again afterwards: `timeout 1 cat` then blocks (124) instead of failing
// at once with EAGAIN (1), as it would on a descriptor left non-blocking.
TEST_F(ClientTest, CommandStopsCleanlyOnSigtermAndLeavesStdinBlocking) {
  const std::string script =
      "exec 3<>'" + server_.dir() + "/stdin.fifo'\n" +
      "'" + binary("iotsocket-client") + "' --host 127.0.0.1 --port " + std::to_string(server_.port()) +
      " --id " + id_text() + " --key " + kKey + " --cert '" + server_.dir() + "/cert.pem' <&3 &\n" +
      "pid=$!\n"
      "sleep 1.5\n"
      "kill -TERM $pid\n"
      "wait $pid\n"
      "echo client=$?\n"
      "timeout 1 cat <&3 >/dev/null 2>&1\n"
      "echo cat=$?\n";
  ASSERT_EQ(run_command({"/usr/bin/mkfifo", server_.dir() + "/stdin.fifo"}).exit_code, 0);
  const auto started = Clock::now();
  RunResult r = run_command({"/bin/sh", "-c", script});
  EXPECT_EQ(r.out, "client=0\ncat=124\n") << r.err;
  EXPECT_LT(Clock::now() - started, 10s);
  EXPECT_EQ(inbound_payloads(1), std::vector<std::string>{"keepalive"});  // it had logged in
}

TEST_F(ClientTest, PrintPinShowsWhatOpensslComputes) {
  RunResult r = run_command({binary("iotsocket-client"), "--host", "127.0.0.1", "--port",
                             std::to_string(server_.port()), "--insecure", "--print-pin"});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, openssl_pin(server_.dir() + "/cert.pem") + "\n");
}

TEST_F(ClientTest, ReconnectsAfterAServerRestartAndLosesNothingSentAfterTheDrop) {
  server_.keep_port();
  auto client = make(options());
  ASSERT_EQ(client->connect(), std::nullopt) << server_.log();
  std::vector<std::string> sent;
  auto send_next = [&] {
    sent.push_back("frame-" + std::to_string(sent.size()));
    ASSERT_EQ(client->send(sent.back()), std::nullopt);
  };
  for (int i = 0; i < 30; ++i) send_next();
  client->poll(100ms);
  ASSERT_EQ(inbound_payloads(31).size(), 31u) << server_.log();  // keepalive login + 30

  ASSERT_EQ(server_.stop(SIGTERM), 0);
  // The client notices, and what it is given meanwhile waits in its queue.
  bool noticed = false;
  for (auto deadline = Clock::now() + 5s; !noticed && Clock::now() < deadline;) {
    cl::Event e = client->poll(100ms);
    noticed = e.error && e.error->code == cl::ErrorCode::server_gone;
    if (e.error) {
      EXPECT_FALSE(e.error->fatal) << e.error->message;
    }
  }
  ASSERT_TRUE(noticed);
  const std::size_t first_after_drop = sent.size();
  for (int i = 0; i < 30; ++i) send_next();
  client->poll(300ms);  // attempts against a stopped server fail: server_gone, retried

  server_.start();
  for (int i = 0; i < 30; ++i) {
    send_next();
    client->poll(20ms);
  }
  for (auto deadline = Clock::now() + 10s; client->queued() > 0 && Clock::now() < deadline;) {
    client->poll(100ms);
  }
  EXPECT_EQ(client->queued(), 0u) << server_.log();
  EXPECT_GE(client->stats().connects, 2u);
  const std::vector<std::string> expected(sent.begin() + static_cast<std::ptrdiff_t>(first_after_drop),
                                          sent.end());
  EXPECT_EQ(inbound_payloads(expected.size()), expected) << server_.log();
}

TEST_F(ClientTest, ABacklogAfterARestartStaysUnderTheServersFloodLimit) {
  server_.keep_port();
  auto client = make(options());
  ASSERT_EQ(client->connect(), std::nullopt) << server_.log();
  ASSERT_EQ(server_.stop(SIGTERM), 0);
  ASSERT_EQ(inbound_payloads(1), std::vector<std::string>{"keepalive"});
  // 600 frames wait while the server is away: sent at once, they would be closed as a
  // flood (333 within 3 s).
  std::vector<std::string> sent;
  for (int i = 0; i < 600; ++i) {
    sent.push_back("backlog-" + std::to_string(i));
    ASSERT_EQ(client->send(sent.back()), std::nullopt);
  }
  server_.start();
  for (auto deadline = Clock::now() + 30s; client->queued() > 0 && Clock::now() < deadline;) {
    client->poll(100ms);
  }
  EXPECT_EQ(client->queued(), 0u);
  EXPECT_EQ(inbound_payloads(sent.size()), sent) << server_.log();
  EXPECT_EQ(server_.count_in_log("reason=flood"), 0u) << server_.log();
  EXPECT_EQ(client->stats().connects, 2u);  // no reconnect on the way
}

TEST_F(ClientTest, CommandIntervalPacesStdinLines) {
  const auto started = Clock::now();
  RunResult r = command({"--key", kKey, "--cert", server_.dir() + "/cert.pem", "--once",
                         "--interval", "300ms"},
                        "tick 1\ntick 2\ntick 3\ntick 4\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_GE(Clock::now() - started, 900ms);  // three intervals between four lines
  EXPECT_EQ(inbound_payloads(4), (std::vector<std::string>{"tick 1", "tick 2", "tick 3", "tick 4"}));
}

class ClientRenewalTest : public ClientTest {
 protected:
  // The server closes connections older than 4 s (reason max_age).
  ClientRenewalTest()
      : ClientTest(ServerOptions{
            .timeouts = "{idle: 90s, handshake: 10s, first_frame: 10s, max_connection_age: 4s}"}) {}
};

TEST_F(ClientRenewalTest, RenewsTheConnectionBeforeTheServersMaxAge) {
  cl::Options o = options();
  o.max_connection_age = 2s;  // renews between 1.8 s and 2 s
  auto client = make(o);
  ASSERT_EQ(client->connect(), std::nullopt) << server_.log();
  std::vector<std::string> sent;
  for (auto end = Clock::now() + 5s; Clock::now() < end;) {
    sent.push_back("tick-" + std::to_string(sent.size()));
    ASSERT_EQ(client->send(sent.back()), std::nullopt);
    client->poll(100ms);
  }
  for (auto deadline = Clock::now() + 5s; client->queued() > 0 && Clock::now() < deadline;) {
    client->poll(100ms);
  }
  EXPECT_GE(client->stats().connects, 3u);
  EXPECT_EQ(server_.count_in_log("reason=max_age"), 0u) << server_.log();
  // Each renewal logs in again with a keepalive (nothing was queued at that moment) or
  // with the next tick; either way every tick arrives, in order.
  std::vector<std::string> ticks;
  while (ticks.size() < sent.size()) {
    auto records = reader_->read(1, 2s);
    if (records.empty()) break;
    if (records[0].payload != "keepalive") ticks.push_back(records[0].payload);
  }
  EXPECT_EQ(ticks, sent) << server_.log();
}

}  // namespace
}  // namespace iotsocket::e2e
