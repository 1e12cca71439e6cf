// Runs the real iotsocket-bench binary against a small server made here: TLS (certificate
// made with the openssl command) or plain TCP, one thread per connection, that decodes
// the frames, remembers what each device sent, and writes a record per frame to a real
// FIFO, as iotsocketd does. Every bench run is bounded by --duration.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/fd.hpp"
#include "protocol/decoder.hpp"
#include "protocol/encoder.hpp"
#include "protocol/record.hpp"

namespace iotsocket::bench {
namespace {

namespace fs = std::filesystem;

struct ServerMode {
  bool tls = true;
  bool close_after_first = false;  // close each connection after its first frame
  bool push_per_frame = false;     // answer each frame with one push frame
  std::string fifo;                // write a record per frame here
};

struct Seen {
  std::uint64_t frames = 0;
  bool times_increasing = true;
  protocol::Time last{};
  std::size_t body_bytes = 0;
};

class TestServer {
 public:
  TestServer(ServerMode mode, const fs::path& cert, const fs::path& key) : mode_(std::move(mode)) {
    if (mode_.tls) {
      ctx_.reset(SSL_CTX_new(TLS_server_method()));
      EXPECT_EQ(SSL_CTX_use_certificate_chain_file(ctx_.get(), cert.c_str()), 1);
      EXPECT_EQ(SSL_CTX_use_PrivateKey_file(ctx_.get(), key.c_str(), SSL_FILETYPE_PEM), 1);
    }
    if (!mode_.fifo.empty()) fifo_.reset(::open(mode_.fifo.c_str(), O_RDWR | O_CLOEXEC));
    listen_.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    EXPECT_EQ(::bind(listen_.get(), reinterpret_cast<sockaddr*>(&a), len), 0);
    EXPECT_EQ(::listen(listen_.get(), 1024), 0);
    EXPECT_EQ(::getsockname(listen_.get(), reinterpret_cast<sockaddr*>(&a), &len), 0);
    port_ = ntohs(a.sin_port);
    acceptor_ = std::thread([this] { accept_loop(); });
  }
  ~TestServer() {
    stop_ = true;
    acceptor_.join();
    for (auto& t : connections_) t.join();  // each ends when the bench closes
  }

  std::uint16_t port() const { return port_; }
  std::map<std::uint64_t, Seen> seen() {
    std::lock_guard lock(mutex_);
    return seen_;
  }
  std::set<std::string> peer_addresses() {
    std::lock_guard lock(mutex_);
    return peers_;
  }

 private:
  struct SslFree {
    void operator()(SSL* s) const { SSL_free(s); }
  };
  struct CtxFree {
    void operator()(SSL_CTX* c) const { SSL_CTX_free(c); }
  };

  void accept_loop() {
    while (!stop_) {
      pollfd p{listen_.get(), POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      Fd c(::accept4(listen_.get(), nullptr, nullptr, SOCK_CLOEXEC));
      if (c) connections_.emplace_back([this, fd = std::move(c)]() mutable { serve(std::move(fd)); });
    }
  }

  void serve(Fd fd) {
    note_peer(fd.get());
    std::unique_ptr<SSL, SslFree> ssl;
    if (ctx_) {
      ssl.reset(SSL_new(ctx_.get()));
      SSL_set_fd(ssl.get(), fd.get());
      if (SSL_accept(ssl.get()) != 1) return;
    }
    protocol::Decoder decoder(protocol::Direction::from_device);
    char buf[16384];
    for (;;) {
      const int n = ssl ? SSL_read(ssl.get(), buf, sizeof buf)
                        : static_cast<int>(::recv(fd.get(), buf, sizeof buf, 0));
      if (n <= 0) return;
      decoder.feed(std::string_view(buf, static_cast<std::size_t>(n)));
      for (auto d = decoder.next(); d.status == protocol::DecodeStatus::frame; d = decoder.next()) {
        take(d.frame);
        if (mode_.close_after_first) return;
        if (mode_.push_per_frame) push(ssl.get(), fd.get(), d.frame.device);
      }
      if (decoder.failed()) return;
    }
  }

  void note_peer(int fd) {
    sockaddr_in peer{};
    socklen_t len = sizeof peer;
    char text[INET_ADDRSTRLEN] = {};
    if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &len) != 0) return;
    ::inet_ntop(AF_INET, &peer.sin_addr, text, sizeof text);
    std::lock_guard lock(mutex_);
    peers_.insert(text);
  }

  void take(const protocol::FrameView& f) {
    std::lock_guard lock(mutex_);
    Seen& s = seen_[f.device.value];
    if (s.frames > 0 && f.time <= s.last) s.times_increasing = false;
    s.last = f.time;
    s.body_bytes = f.body.size();
    ++s.frames;
    if (fifo_) {
      std::string record;
      protocol::append_record(record, f.device, f.body);
      EXPECT_EQ(::write(fifo_.get(), record.data(), record.size()), static_cast<ssize_t>(record.size()));
    }
  }

  void push(SSL* ssl, int fd, protocol::DeviceId device) {
    std::string frame;
    ASSERT_FALSE(protocol::append_push_frame(frame, device, protocol::to_time(std::chrono::system_clock::now()),
                                             "hello-device"));
    if (ssl != nullptr) {
      SSL_write(ssl, frame.data(), static_cast<int>(frame.size()));
    } else {
      (void)::send(fd, frame.data(), frame.size(), MSG_NOSIGNAL);
    }
  }

  ServerMode mode_;
  std::unique_ptr<SSL_CTX, CtxFree> ctx_;
  Fd listen_;
  Fd fifo_;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  std::vector<std::thread> connections_;  // touched by the acceptor only, then joined
  std::mutex mutex_;
  std::map<std::uint64_t, Seen> seen_;
  std::set<std::string> peers_;
};

struct BenchRun {
  int exit_code = -1;
  std::string output;  // stdout, and stderr too when asked
};

BenchRun run_bench(const std::string& args, bool with_stderr = false, const std::string& prefix = "") {
  const std::string cmd = prefix + BENCH_BINARY + std::string(" ") + args +
                          (with_stderr ? " 2>&1" : " 2>/dev/null");
  BenchRun r;
  std::FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, p)) > 0;) r.output.append(buf, n);
  const int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

class BenchEndToEnd : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("bench_e2e_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    const std::string cmd = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 "
                            "-subj /CN=localhost -keyout " + key().string() + " -out " + cert().string() +
                            " >/dev/null 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << "openssl req failed";
    ASSERT_EQ(::mkfifo(fifo().c_str(), 0600), 0);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path cert() const { return dir_ / "cert.pem"; }
  fs::path key() const { return dir_ / "key.pem"; }
  fs::path fifo() const { return dir_ / "inbound.fifo"; }

  fs::path dir_;
};

bool has(const std::string& text, const std::string& piece) {
  return text.find(piece) != std::string::npos;
}

TEST_F(BenchEndToEnd, ManyTlsDevicesSendTheirFramesAndEveryRecordIsCounted) {
  TestServer server({.tls = true, .fifo = fifo()}, cert(), key());
  const BenchRun r = run_bench("--port " + std::to_string(server.port()) +
                          " --key k3y --devices 100 --first-id 7000 --rate 50 --frames 5 --payload-bytes 40"
                          " --connect-rate 0 --linger 0.2 --duration 30 --count-inbound " +
                          fifo().string() + " --json");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(has(r.output, "\"attempted\":100,\"up\":100,\"failed\":0")) << r.output;
  EXPECT_TRUE(has(r.output, "\"frames\":{\"sent\":500,\"skipped\":0")) << r.output;
  EXPECT_TRUE(has(r.output, "\"inbound\":{\"records\":500,\"expected\":500")) << r.output;
  EXPECT_TRUE(has(r.output, "\"handshake_ms\":{\"count\":100,")) << r.output;
  EXPECT_TRUE(has(r.output, "\"ended\":\"done\"")) << r.output;
  const auto seen = server.seen();
  ASSERT_EQ(seen.size(), 100u);
  EXPECT_EQ(seen.begin()->first, 7000u);
  EXPECT_EQ(seen.rbegin()->first, 7099u);
  for (const auto& [id, s] : seen) {
    EXPECT_EQ(s.frames, 5u) << id;
    EXPECT_TRUE(s.times_increasing) << id;
    EXPECT_EQ(s.body_bytes, 40u) << id;
  }
}

TEST_F(BenchEndToEnd, ServerClosesAfterLoginAreCountedOverPlainTcp) {
  TestServer server({.tls = false, .close_after_first = true}, cert(), key());
  const BenchRun r = run_bench("--port " + std::to_string(server.port()) +
                          " --key k3y --devices 20 --rate 20 --frames 5 --no-tls --duration 30 --json");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(has(r.output, "\"closed_after_login\":20")) << r.output;
  EXPECT_TRUE(has(r.output, "\"server_closes\":20")) << r.output;
  EXPECT_EQ(server.seen().size(), 20u);
}

TEST_F(BenchEndToEnd, PushFramesFromTheServerAreCounted) {
  TestServer server({.tls = true, .push_per_frame = true}, cert(), key());
  const BenchRun r = run_bench("--port " + std::to_string(server.port()) +
                          " --key k3y --devices 10 --rate 20 --frames 3 --linger 0.5 --duration 30 --json");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(has(r.output, "\"pushes\":{\"received\":30,\"undecodable_streams\":0}")) << r.output;
}

TEST_F(BenchEndToEnd, HoldKeepsConnectionsOpenAndSendsKeepalives) {
  TestServer server({.tls = true}, cert(), key());
  const BenchRun r = run_bench("--port " + std::to_string(server.port()) +
                          " --key k3y --devices 30 --hold 1 --keepalive 0.4 --source-ips 127.0.0.2-127.0.0.4"
                          " --duration 30 --json", true);
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(has(r.output, "ramp done: 30 of 30 connections up; holding them for 1 s")) << r.output;
  EXPECT_EQ(server.peer_addresses(), (std::set<std::string>{"127.0.0.2", "127.0.0.3", "127.0.0.4"}));
  const auto seen = server.seen();
  ASSERT_EQ(seen.size(), 30u);
  for (const auto& [id, s] : seen) {
    EXPECT_GE(s.frames, 2u) << id;  // the login frame and at least one keepalive
    EXPECT_TRUE(s.times_increasing) << id;
  }
}

TEST_F(BenchEndToEnd, RefusedConnectionsAreCounted) {
  std::uint16_t port = 0;
  {
    TestServer closed({.tls = true}, cert(), key());  // its port is free again afterwards
    port = closed.port();
  }
  const BenchRun r = run_bench("--port " + std::to_string(port) + " --key k3y --devices 3 --duration 30 --json");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(has(r.output, "\"connect_refused\":3")) << r.output;
}

TEST_F(BenchEndToEnd, RefusesAHostOutsideLoopback) {
  const BenchRun r = run_bench("--host 192.0.2.1 --port 9000 --key k3y", true);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_TRUE(has(r.output, "loopback only")) << r.output;
}

TEST_F(BenchEndToEnd, NamesTheFileLimitWhenItIsTooLow) {
  const BenchRun r = run_bench("--port 9000 --key k3y --devices 1000", true, "ulimit -n 300 && exec ");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(has(r.output, "RLIMIT_NOFILE")) << r.output;
  EXPECT_TRUE(has(r.output, "is 300")) << r.output;
}

}  // namespace
}  // namespace iotsocket::bench
