// The Prometheus endpoint end to end: iotsocketd with metrics.listen on 127.0.0.1:0, real
// devices over TLS, and the endpoint's text parsed by an independent parser, python3's
// prometheus_client (Debian python3-prometheus-client), not by our own code.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "protocol/encoder.hpp"
#include "tests/e2e/harness.hpp"

namespace iotsocket::e2e {
namespace {

using protocol::DeviceId;

constexpr std::uint64_t kFirstId = 4000000000;
const std::string kKey = "metrics-key-1";

// The TCP ports a process listens on: the LISTEN sockets of /proc/PID/net/tcp and tcp6 whose
// inode is one of the process's descriptors. Empty when the process is gone.
std::set<std::uint16_t> listening_ports(pid_t pid) {
  const std::string proc = "/proc/" + std::to_string(pid);
  std::set<std::string> inodes;
  std::error_code error;
  for (const auto& fd : std::filesystem::directory_iterator(proc + "/fd", error)) {
    const std::string target = std::filesystem::read_symlink(fd.path(), error).string();
    if (target.starts_with("socket:[")) inodes.insert(target.substr(8, target.size() - 9));
  }
  std::set<std::uint16_t> ports;
  for (const char* table : {"/net/tcp", "/net/tcp6"}) {
    std::ifstream in(proc + table);
    std::string line;
    std::getline(in, line);  // the column names
    while (std::getline(in, line)) {
      // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode
      std::istringstream fields(line);
      std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout, inode;
      fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >>
          timeout >> inode;
      if (state != "0A" || !inodes.contains(inode)) continue;  // 0A: LISTEN
      ports.insert(static_cast<std::uint16_t>(
          std::stoul(local.substr(local.find(':') + 1), nullptr, 16)));
    }
  }
  return ports;
}

// What the master and its workers listen on, together.
std::set<std::uint16_t> server_listening_ports(const TestServer& server, unsigned workers) {
  std::set<std::uint16_t> ports = listening_ports(server.pid());
  for (unsigned i = 0; i < workers; ++i) {
    const pid_t worker = server.worker_pid(i);
    EXPECT_GT(worker, 0) << "worker " << i << " not in the log";
    ports.merge(listening_ports(worker));
  }
  return ports;
}

ServerOptions with_metrics(ServerOptions options = {}) {
  options.extra_yaml = "metrics: {listen: \"127.0.0.1:0\"}\n";
  return options;
}

// A frame's exact bytes, so that bytes_in can be checked to the byte.
std::string frame_bytes(DeviceId id, std::string_view payload, protocol::Time time = fresh_time()) {
  std::string frame;
  EXPECT_FALSE(protocol::append_device_frame(frame, id, kKey, time, payload));
  return frame;
}

class MetricsTest : public ::testing::Test {
 protected:
  explicit MetricsTest(ServerOptions options = {}) : server_(with_metrics(std::move(options))) {}

  void SetUp() override {
    server_.add_devices(kFirstId, 5, kKey);
    server_.start();
    port_ = metrics_port(server_);
    ASSERT_NE(port_, 0) << server_.log();
    reader_.emplace(server_.inbound_fifo());
  }

  // Scrapes, parses, and checks that no counter went backwards since the last scrape.
  Samples scrape() {
    const Scrape s = http_get(port_, "/metrics");
    EXPECT_EQ(s.status, 200) << s.head;
    EXPECT_NE(s.head.find("Content-Type: text/plain; version=0.0.4"), std::string::npos) << s.head;
    Samples now = parse_with_prometheus_client(s.body);
    for (const auto& [name, value] : last_) {
      if (name.find("_total") == std::string::npos) continue;
      EXPECT_TRUE(now.contains(name)) << name << " vanished";
      EXPECT_GE(now[name], value) << name << " went backwards";
    }
    last_ = now;
    return now;
  }

  // Scrapes until `name` shows `value` (a worker counts a moment after the client's call
  // returns); bounded at 5 s. Returns the last value seen.
  double wait_for(const std::string& name, double value) {
    const auto deadline = Clock::now() + 5s;
    double seen = scrape()[name];
    while (seen != value && Clock::now() < deadline) {
      std::this_thread::sleep_for(20ms);
      seen = scrape()[name];
    }
    return seen;
  }

  TestServer server_;
  std::uint16_t port_ = 0;
  std::optional<InboundReader> reader_;
  Samples last_;
};

TEST_F(MetricsTest, ParsesAsPrometheusTextAndCountersMoveAsFramesFlow) {
  Samples before = scrape();
  for (const char* family :
       {"iotsocket_logins_total", "iotsocket_frames_in_total", "iotsocket_bytes_in_total",
        "iotsocket_bytes_out_total", "iotsocket_pushes_routed_total", "iotsocket_pushes_queued_total",
        "iotsocket_pushes_expired_total", "iotsocket_spool_bytes", "iotsocket_worker_restarts_total",
        "iotsocket_tls_handshake_failures_total", "iotsocket_connections{state=\"live\"}",
        "iotsocket_rejections_total{reason=\"wrong_key\"}",
        "iotsocket_certificate_expiry_timestamp_seconds"}) {
    EXPECT_TRUE(before.contains(family)) << family;
  }
  EXPECT_EQ(before["iotsocket_logins_total"], 0);
  EXPECT_EQ(before["iotsocket_frames_in_total"], 0);
  // make_certificate() makes one valid for 2 days.
  const double now_s = static_cast<double>(
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count());
  EXPECT_GT(before["iotsocket_certificate_expiry_timestamp_seconds"], now_s + 86400);
  EXPECT_LT(before["iotsocket_certificate_expiry_timestamp_seconds"], now_s + 3 * 86400);

  // Two devices log in and send 5 frames in all; the backend reads them.
  Device a(server_.port()), b(server_.port());
  std::size_t sent_bytes = 0;
  for (int i = 0; i < 3; ++i) {
    const std::string f = frame_bytes(DeviceId{kFirstId}, "temp=" + std::to_string(20 + i));
    sent_bytes += f.size();
    ASSERT_TRUE(a.send_raw(f));
  }
  for (int i = 0; i < 2; ++i) {
    const std::string f = frame_bytes(DeviceId{kFirstId + 1}, "hum=" + std::to_string(40 + i));
    sent_bytes += f.size();
    ASSERT_TRUE(b.send_raw(f));
  }
  ASSERT_EQ(reader_->read(5).size(), 5u) << server_.log();
  Samples flowing = scrape();
  EXPECT_EQ(flowing["iotsocket_logins_total"], 2);
  EXPECT_EQ(flowing["iotsocket_frames_in_total"], 5);
  EXPECT_EQ(flowing["iotsocket_bytes_in_total"], static_cast<double>(sent_bytes));
  EXPECT_EQ(flowing["iotsocket_connections{state=\"live\"}"], 2);

  // A push to a connected device is routed and written; one to an offline device queued.
  server_.push_lines(std::to_string(kFirstId) + " led=on\n" + std::to_string(kFirstId + 4) +
                     " later\n");
  ASSERT_EQ(a.read_pushes(1).size(), 1u) << server_.log();
  ASSERT_TRUE(server_.wait_for_log("push queued device=" + std::to_string(kFirstId + 4)))
      << server_.log();
  Samples pushed = scrape();
  EXPECT_EQ(pushed["iotsocket_pushes_routed_total"], 1);
  EXPECT_EQ(pushed["iotsocket_pushes_queued_total"], 1);
  EXPECT_EQ(pushed["iotsocket_offline_queue_pushes"], 1);
  EXPECT_EQ(pushed["iotsocket_frames_out_total"], 1);
  EXPECT_EQ(pushed["iotsocket_bytes_out_total"], static_cast<double>(a.raw_received().size()));

  // A wrong key, a frame 1 h old, and a client that does not speak TLS.
  Device wrong(server_.port());
  std::string bad_key;
  ASSERT_FALSE(protocol::append_device_frame(bad_key, DeviceId{kFirstId + 2}, "not-the-key",
                                             fresh_time(), "hello"));
  ASSERT_TRUE(wrong.send_raw(bad_key));
  EXPECT_TRUE(wrong.wait_closed());
  ASSERT_TRUE(b.send_raw(frame_bytes(DeviceId{kFirstId + 1}, "stale",
                                     fresh_time() - std::chrono::hours(1))));
  EXPECT_TRUE(b.wait_closed());
  Device plain(server_.port(), /*tls=*/false);
  ASSERT_TRUE(plain.send_raw("GET / HTTP/1.0\r\n\r\n"));
  EXPECT_TRUE(plain.wait_closed());
  Samples refused = scrape();
  EXPECT_EQ(refused["iotsocket_rejections_total{reason=\"wrong_key\"}"], 1);
  EXPECT_EQ(refused["iotsocket_rejections_total{reason=\"time_skew\"}"], 1);
  EXPECT_EQ(refused["iotsocket_closes_total{reason=\"tls_failed\"}"], 1);
  EXPECT_EQ(refused["iotsocket_tls_handshake_failures_total"], 1);
  EXPECT_EQ(refused["iotsocket_connections{state=\"live\"}"], 1);
  EXPECT_EQ(refused["iotsocket_logins_total"], 2);
  EXPECT_EQ(refused["iotsocket_frames_in_total"], 5);
}

TEST_F(MetricsTest, AKilledWorkerIsCountedAndItsCountersStay) {
  Device a(server_.port()), b(server_.port());  // one on each worker
  ASSERT_TRUE(a.send_frame(DeviceId{kFirstId}, kKey, "first"));
  ASSERT_TRUE(b.send_frame(DeviceId{kFirstId + 1}, kKey, "second"));
  ASSERT_EQ(reader_->read(2).size(), 2u) << server_.log();
  Samples before = scrape();
  ASSERT_EQ(before["iotsocket_frames_in_total"], 2);
  ASSERT_EQ(before["iotsocket_connections{state=\"live\"}"], 2);
  const pid_t worker = server_.worker_pid(0);
  ASSERT_GT(worker, 0);
  ASSERT_EQ(::kill(worker, SIGKILL), 0);
  ASSERT_TRUE(server_.wait_for_log("died: signal Killed")) << server_.log();
  server_.wait_for_log_count(" ready", 3);
  ASSERT_EQ(server_.count_in_log(" ready"), 3u) << server_.log();
  Samples after = scrape();  // also checks that no counter went backwards
  EXPECT_EQ(after["iotsocket_worker_restarts_total"], 1);
  EXPECT_EQ(after["iotsocket_frames_in_total"], 2);
  EXPECT_EQ(after["iotsocket_logins_total"], 2);
  EXPECT_EQ(after["iotsocket_connections{state=\"live\"}"], 1);  // the dead worker's is gone
  EXPECT_EQ(after["iotsocket_workers_ready"], 2);
}

TEST_F(MetricsTest, OtherPathsAre404AndASilentScraperBlocksNobody) {
  // A client that connects and says nothing must not hold up the master or other scrapes.
  Fd silent = connect_local(port_);
  ASSERT_TRUE(silent);
  const Scrape missing = http_get(port_, "/");
  EXPECT_EQ(missing.status, 404) << missing.head;
  EXPECT_NE(missing.head.find("Connection: close"), std::string::npos) << missing.head;
  EXPECT_EQ(http_get(port_, "/metrics?x=1").status, 200);
  Device d(server_.port());
  ASSERT_TRUE(d.send_frame(DeviceId{kFirstId + 3}, kKey, "still served"));
  EXPECT_EQ(reader_->read(1).size(), 1u) << server_.log();
  // The silent one is closed after the scrape timeout (5 s), bounded here at 10 s.
  pollfd p{silent.get(), POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 10000), 1);
  char byte;
  EXPECT_EQ(::recv(silent.get(), &byte, 1, 0), 0);
}

TEST_F(MetricsTest, ConnectionsByStateAndTheCertificateAfterAReload) {
  // A TCP connection that says nothing is in the TLS handshake; a TLS one that has not
  // sent its login frame awaits it.
  Fd silent = connect_local(server_.port());
  ASSERT_TRUE(silent);
  EXPECT_EQ(wait_for("iotsocket_connections{state=\"handshake\"}", 1), 1);
  Device tls_only(server_.port());
  ASSERT_TRUE(tls_only.connected());
  EXPECT_EQ(wait_for("iotsocket_connections{state=\"awaiting_login\"}", 1), 1);
  EXPECT_EQ(scrape()["iotsocket_connections{state=\"live\"}"], 0);
  silent.reset();
  EXPECT_EQ(wait_for("iotsocket_connections{state=\"handshake\"}", 0), 0);

  // A certificate valid for 30 days instead of 2, taken in by SIGHUP.
  make_certificate(server_.dir() + "/cert.pem", server_.dir() + "/key.pem", 30);
  ASSERT_EQ(::kill(server_.pid(), SIGHUP), 0);
  ASSERT_TRUE(server_.wait_for_log("reload: certificate")) << server_.log();
  const double now_s = static_cast<double>(
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count());
  EXPECT_GT(scrape()["iotsocket_certificate_expiry_timestamp_seconds"], now_s + 29 * 86400);
}

TEST_F(MetricsTest, OnlyTheMasterListensOnTheEndpoint) {
  // The workers are forked from the master: none keeps its endpoint, a replacement neither.
  const std::set<std::uint16_t> both{server_.port(), port_};
  EXPECT_EQ(listening_ports(server_.pid()), both);
  const unsigned workers = ServerOptions{}.workers;
  for (unsigned i = 0; i < workers; ++i) {
    EXPECT_FALSE(listening_ports(server_.worker_pid(i)).contains(port_)) << "worker " << i;
  }
  const pid_t first = server_.worker_pid(0);
  ASSERT_EQ(::kill(first, SIGKILL), 0);
  server_.wait_for_log_count(" ready", workers + 1);
  ASSERT_NE(server_.worker_pid(0), first) << server_.log();
  EXPECT_EQ(server_listening_ports(server_, workers), both);
  EXPECT_FALSE(listening_ports(server_.worker_pid(0)).contains(port_));
  EXPECT_EQ(http_get(port_, "/metrics").status, 200);
}

class MetricsCapTest : public MetricsTest {
 protected:
  MetricsCapTest() : MetricsTest([] {
    ServerOptions o;
    o.limits = "{max_connections: 100, per_ip: 1}";
    return o;
  }()) {}
};

TEST_F(MetricsCapTest, RefusalsAtAcceptAreCountedByCap) {
  Device first(server_.port());
  ASSERT_TRUE(first.connected());
  Device second(server_.port());
  EXPECT_FALSE(second.connected());  // closed before the TLS handshake
  EXPECT_EQ(wait_for("iotsocket_accept_refusals_total{cap=\"per_ip\"}", 1), 1);
  EXPECT_EQ(scrape()["iotsocket_accept_refusals_total{cap=\"max_connections\"}"], 0);
}

TEST(MetricsOff, IsOffByDefault) {
  TestServer server;
  server.start();
  EXPECT_EQ(server.log().find("metrics on"), std::string::npos) << server.log();
  // Nothing listens but the devices' port: not the master, not a worker.
  EXPECT_EQ(server_listening_ports(server, ServerOptions{}.workers),
            std::set<std::uint16_t>{server.port()});
}

TEST(MetricsOff, AnAddressInUseStopsTheStartWithTheKeysName) {
  Fd taken(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in at{};
  at.sin_family = AF_INET;
  ::inet_pton(AF_INET, "127.0.0.1", &at.sin_addr);
  ASSERT_EQ(::bind(taken.get(), reinterpret_cast<sockaddr*>(&at), sizeof at), 0);
  ASSERT_EQ(::listen(taken.get(), 1), 0);
  socklen_t length = sizeof at;
  ::getsockname(taken.get(), reinterpret_cast<sockaddr*>(&at), &length);
  ServerOptions options;
  options.extra_yaml = "metrics: {listen: \"127.0.0.1:" + std::to_string(ntohs(at.sin_port)) + "\"}\n";
  TestServer server(options);
  EXPECT_THROW(server.start(), std::runtime_error);
  EXPECT_NE(server.log().find("metrics.listen: bind() for 127.0.0.1 port"), std::string::npos)
      << server.log();
}

}  // namespace
}  // namespace iotsocket::e2e
