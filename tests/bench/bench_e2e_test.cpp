// Runs the real iotsocket-bench binary against a small server made here: TLS (certificate
// made with the openssl command) or plain TCP, one thread per connection, that decodes
// the frames, remembers what each device sent, writes a record per frame to a real FIFO
// and, in push mode, reads a real push FIFO and sends each record to its device as a push
// frame, as iotsocketd does. Push mode also runs once against the built iotsocketd.
// Every bench run is bounded by --duration.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
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
#include "protocol/line_reader.hpp"
#include "protocol/record.hpp"

extern char** environ;

namespace iotsocket::bench {
namespace {

namespace fs = std::filesystem;

// What the server does to the pushes it reads from the push FIFO.
enum class Mangle {
  none,        // sends each once, in order
  twice,       // sends each twice
  swap_pairs,  // per device, sends the 2nd before the 1st, the 4th before the 3rd, ...
};

struct ServerMode {
  bool tls = true;
  bool close_after_first = false;  // close each connection after its first frame
  bool push_per_frame = false;     // answer each frame with one push frame
  std::string fifo;                // write a record per frame here
  std::string push_fifo;           // read push records here and send them to the devices
  Mangle mangle = Mangle::none;
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
    if (!mode_.push_fifo.empty()) {
      // Read-write, as iotsocketd holds it: writers may come and go without an EOF.
      push_fifo_.reset(::open(mode_.push_fifo.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC));
      EXPECT_TRUE(push_fifo_.valid());
      push_reader_ = std::thread([this] { read_pushes(); });
    }
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
    if (push_reader_.joinable()) push_reader_.join();
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
  std::uint64_t push_records() {
    std::lock_guard lock(mutex_);
    return push_records_;
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
    if (push_fifo_) return serve_with_pushes(fd.get(), ssl.get());
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

  // Push mode: reads the device's frames when there are some, and between reads sends
  // what the push FIFO holds for the device the connection logged in as.
  void serve_with_pushes(int fd, SSL* ssl) {
    protocol::Decoder decoder(protocol::Direction::from_device);
    std::optional<protocol::DeviceId> device;
    std::optional<std::string> held;  // Mangle::swap_pairs: the first of a pair
    char buf[16384];
    for (;;) {
      pollfd p{fd, POLLIN, 0};
      if ((ssl != nullptr && SSL_pending(ssl) > 0) || ::poll(&p, 1, 5) > 0) {
        const int n = ssl ? SSL_read(ssl, buf, sizeof buf) : static_cast<int>(::recv(fd, buf, sizeof buf, 0));
        if (n <= 0) return;
        decoder.feed(std::string_view(buf, static_cast<std::size_t>(n)));
        for (auto d = decoder.next(); d.status == protocol::DecodeStatus::frame; d = decoder.next()) {
          take(d.frame);
          device = d.frame.device;
        }
        if (decoder.failed()) return;
      }
      if (!device) continue;
      for (std::string& payload : take_pushes(*device)) {
        if (mode_.mangle == Mangle::twice) send_push(ssl, fd, *device, payload);
        if (mode_.mangle != Mangle::swap_pairs) {
          send_push(ssl, fd, *device, payload);
        } else if (!held) {
          held = std::move(payload);
        } else {
          send_push(ssl, fd, *device, payload);
          send_push(ssl, fd, *device, *held);
          held.reset();
        }
      }
    }
  }

  void read_pushes() {
    protocol::LineReader lines;
    char buf[65536];
    while (!stop_) {
      pollfd p{push_fifo_.get(), POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      for (ssize_t n; (n = ::read(push_fifo_.get(), buf, sizeof buf)) > 0;) {
        lines.feed(std::string_view(buf, static_cast<std::size_t>(n)));
        for (auto l = lines.next(); l.status != protocol::LineStatus::need_more; l = lines.next()) {
          auto record = protocol::parse_record(l.text);
          EXPECT_TRUE(l.status == protocol::LineStatus::line && record) << l.text;
          if (!record) continue;
          std::lock_guard lock(mutex_);
          ++push_records_;
          outbox_[record->device.value].push_back(std::move(record->payload));
        }
      }
    }
  }

  std::vector<std::string> take_pushes(protocol::DeviceId device) {
    std::lock_guard lock(mutex_);
    auto it = outbox_.find(device.value);
    if (it == outbox_.end()) return {};
    std::vector<std::string> pushes = std::move(it->second);
    outbox_.erase(it);
    return pushes;
  }

  void send_push(SSL* ssl, int fd, protocol::DeviceId device, std::string_view payload) {
    std::string frame;
    ASSERT_FALSE(protocol::append_push_frame(frame, device, protocol::to_time(std::chrono::system_clock::now()),
                                             payload));
    if (ssl != nullptr) {
      SSL_write(ssl, frame.data(), static_cast<int>(frame.size()));
    } else {
      (void)::send(fd, frame.data(), frame.size(), MSG_NOSIGNAL);
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
  Fd push_fifo_;
  std::thread push_reader_;
  std::uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread acceptor_;
  std::vector<std::thread> connections_;  // touched by the acceptor only, then joined
  std::mutex mutex_;
  std::map<std::uint64_t, Seen> seen_;
  std::set<std::string> peers_;
  std::uint64_t push_records_ = 0;
  std::map<std::uint64_t, std::vector<std::string>> outbox_;  // device -> pushes not yet sent
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
    ASSERT_EQ(::mkfifo(push_fifo().c_str(), 0600), 0);
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path cert() const { return dir_ / "cert.pem"; }
  fs::path key() const { return dir_ / "key.pem"; }
  fs::path fifo() const { return dir_ / "inbound.fifo"; }
  fs::path push_fifo() const { return dir_ / "push.fifo"; }

  fs::path dir_;
};

bool has(const std::string& text, const std::string& piece) {
  return text.find(piece) != std::string::npos;
}

// The number after "key": in a JSON report, or -1.
double json_number(const std::string& json, const std::string& key) {
  const auto at = json.find("\"" + key + "\":");
  if (at == std::string::npos) return -1;
  return std::strtod(json.c_str() + at + key.size() + 3, nullptr);
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

TEST_F(BenchEndToEnd, PushModeWritesThePushFifoAndEveryPushArrivesOnceInOrder) {
  TestServer server({.tls = true, .fifo = fifo(), .push_fifo = push_fifo()}, cert(), key());
  const BenchRun r = run_bench("--port " + std::to_string(server.port()) +
                               " --key k3y --devices 20 --first-id 500 --connect-rate 0 --linger 0.2"
                               " --payload-bytes 64 --duration 30 --count-inbound " + fifo().string() +
                               " --push-fifo " + push_fifo().string() + " --pushes 400 --push-rate 2000 --json");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(has(r.output, "\"push_fifo\":{\"requested\":400,\"rate\":2000,\"devices\":20,\"written\":400,"))
      << r.output;
  EXPECT_TRUE(has(r.output, "\"stopped\":\"done\",\"received\":400,\"missing\":0,\"duplicates\":0,"
                            "\"out_of_order\":0,\"foreign\":0,")) << r.output;
  EXPECT_TRUE(has(r.output, "\"latency_ms\":{\"count\":400,")) << r.output;
  EXPECT_TRUE(has(r.output, "\"pushes\":{\"received\":400,\"undecodable_streams\":0}")) << r.output;
  EXPECT_TRUE(has(r.output, "\"ended\":\"done\"")) << r.output;
  // Paced: 400 pushes at 2000/s take about 0.2 s to write.
  const double per_second = json_number(r.output, "write_per_second");
  EXPECT_GT(per_second, 1500) << r.output;
  EXPECT_LT(per_second, 2500) << r.output;
  EXPECT_EQ(server.push_records(), 400u);
}

TEST_F(BenchEndToEnd, PushDuplicatesAreCountedAndFailTheRun) {
  TestServer server({.tls = true, .push_fifo = push_fifo(), .mangle = Mangle::twice}, cert(), key());
  const BenchRun r = run_bench("--port " + std::to_string(server.port()) +
                               " --key k3y --devices 10 --connect-rate 0 --linger 0.5 --duration 30"
                               " --push-fifo " + push_fifo().string() + " --pushes 200 --json");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_TRUE(has(r.output, "\"written\":200,")) << r.output;  // unpaced
  EXPECT_TRUE(has(r.output, "\"received\":200,\"missing\":0,\"duplicates\":200,\"out_of_order\":0,"))
      << r.output;
}

TEST_F(BenchEndToEnd, PushesOvertakingOlderOnesAreCountedOutOfOrder) {
  TestServer server({.tls = true, .push_fifo = push_fifo(), .mangle = Mangle::swap_pairs}, cert(), key());
  const BenchRun r = run_bench("--port " + std::to_string(server.port()) +
                               " --key k3y --devices 10 --connect-rate 0 --linger 0.2 --duration 30"
                               " --push-fifo " + push_fifo().string() + " --pushes 200 --push-rate 0 --json");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  // 20 pushes per device, in 10 swapped pairs: the first of each pair comes late.
  EXPECT_TRUE(has(r.output, "\"received\":200,\"missing\":0,\"duplicates\":0,\"out_of_order\":100,"))
      << r.output;
}

TEST_F(BenchEndToEnd, PushFifoWithoutAServerIsRefused) {
  const BenchRun r = run_bench("--port 9 --key k3y --push-fifo " + push_fifo().string() + " --pushes 5", true);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_TRUE(has(r.output, "nobody has it open for reading")) << r.output;
  const BenchRun no_count = run_bench("--port 9 --key k3y --push-fifo " + push_fifo().string(), true);
  EXPECT_EQ(no_count.exit_code, 2);
  EXPECT_TRUE(has(no_count.output, "needs --pushes")) << no_count.output;
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

// ---- against the built iotsocketd -------------------------------------------------------

// iotsocketd in a temporary directory: TLS with the fixture's certificate, two workers,
// 127.0.0.1 on a port the kernel picks, both FIFOs, devices registered with iotsocketctl.
class RealServer {
 public:
  RealServer(const fs::path& dir, std::uint64_t first_id, std::uint64_t devices, const std::string& key)
      : dir_(dir) {
    std::ofstream(dir / "iotsocket.yaml")
        << "listen: [{address: 127.0.0.1, port: 0}]\n"
        << "tls: {enabled: true, cert: cert.pem, key: key.pem}\n"
        << "workers: 2\n"
        << "devices: {sqlite: devices.db}\n"
        << "fifo: {push: push.fifo, inbound: inbound.fifo}\n"
        << "spool: {dir: spool}\n"
        << "runtime: {shm_name: bench-e2e-" << ::getpid() << ", pid_file: iotsocketd.pid}\n"
        << "limits: {max_connections: 1000, per_ip: 1000}\n"
        << "log: {level: info}\n";
    {
      std::ofstream list(dir / "devices.txt");
      for (std::uint64_t i = 0; i < devices; ++i) list << first_id + i << " " << key << "\n";
    }
    const std::string import = std::string(IOTSOCKETCTL_BINARY) + " --config " + (dir / "iotsocket.yaml").string() +
                               " devices import --fast-hash " + (dir / "devices.txt").string() + " >/dev/null 2>&1";
    EXPECT_EQ(std::system(import.c_str()), 0) << import;
    start();
  }
  ~RealServer() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGTERM);
    int status = 0;
    ::waitpid(pid_, &status, 0);
  }

  std::uint16_t port() const { return port_; }
  std::string log() const {
    std::ifstream in(dir_ / "server.log");
    return std::string(std::istreambuf_iterator<char>(in), {});
  }

 private:
  void start() {
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 1, (dir_ / "server.log").c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&actions, 1, 2);
    const std::string config = (dir_ / "iotsocket.yaml").string();
    std::vector<char*> argv{const_cast<char*>(IOTSOCKETD_BINARY), const_cast<char*>("--config"),
                            const_cast<char*>(config.c_str()), nullptr};
    EXPECT_EQ(::posix_spawn(&pid_, IOTSOCKETD_BINARY, &actions, nullptr, argv.data(), environ), 0);
    posix_spawn_file_actions_destroy(&actions);
    const std::string listening = "listening on 127.0.0.1:";
    for (int i = 0; i < 2000 && port_ == 0; ++i) {  // up to 20 s
      const std::string text = log();
      const auto at = text.find(listening);
      std::size_t ready = 0;
      for (auto r = text.find(" ready"); r != std::string::npos; r = text.find(" ready", r + 1)) ++ready;
      if (at != std::string::npos && ready >= 2) {
        port_ = static_cast<std::uint16_t>(std::stoi(text.substr(at + listening.size())));
      } else {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
    ASSERT_NE(port_, 0) << log();
  }

  fs::path dir_;
  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
};

TEST_F(BenchEndToEnd, AgainstIotsocketdFiftyDevicesGetFiveHundredPushesOnceInOrder) {
  RealServer server(dir_, 1300000000, 50, "bench-push-key-01");
  ASSERT_NE(server.port(), 0);
  const BenchRun r = run_bench("--port " + std::to_string(server.port()) +
                               " --key bench-push-key-01 --first-id 1300000000 --devices 50 --connect-rate 0"
                               " --linger 0.2 --duration 60 --count-inbound " + fifo().string() +
                               " --push-fifo " + push_fifo().string() + " --pushes 500 --json");
  EXPECT_EQ(r.exit_code, 0) << r.output << server.log().substr(0, 4000);
  EXPECT_TRUE(has(r.output, "\"devices\":50,\"written\":500,")) << r.output;
  EXPECT_TRUE(has(r.output, "\"received\":500,\"missing\":0,\"duplicates\":0,\"out_of_order\":0,\"foreign\":0,"))
      << r.output;
  EXPECT_TRUE(has(r.output, "\"inbound\":{\"records\":50,\"expected\":50")) << r.output;
  EXPECT_TRUE(has(r.output, "\"ended\":\"done\"")) << r.output;
}

}  // namespace
}  // namespace iotsocket::bench
