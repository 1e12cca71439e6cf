#include "tests/e2e/harness.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <openssl/err.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "protocol/encoder.hpp"

extern char** environ;

namespace iotsocket::e2e {
namespace {

// A device writing to a connection the server has reset gets EPIPE, not a fatal SIGPIPE.
const bool kSigpipeIgnored = [] {
  ::signal(SIGPIPE, SIG_IGN);
  return true;
}();

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string make_temp_dir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "iotsocket-e2e-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
  return pattern;
}

pid_t spawn(const std::vector<std::string>& argv, int out_fd, int err_fd,
            const char* stdin_path = "/dev/null") {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, stdin_path, O_RDONLY, 0);
  if (out_fd >= 0) posix_spawn_file_actions_adddup2(&actions, out_fd, 1);
  if (err_fd >= 0) posix_spawn_file_actions_adddup2(&actions, err_fd, 2);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawn(&pid, args[0], &actions, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw std::runtime_error("posix_spawn " + argv[0] + ": " + std::strerror(rc));
  return pid;
}

int wait_exit(pid_t pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

}  // namespace

std::string binary(std::string_view name) { return std::string(IOTSOCKET_BIN_DIR) + "/" + std::string(name); }

RunResult run_command(const std::vector<std::string>& argv, const std::string& input) {
  std::string dir = make_temp_dir();
  std::string in_path = dir + "/in", out_path = dir + "/out", err_path = dir + "/err";
  std::ofstream(in_path, std::ios::binary) << input;
  Fd out(::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  Fd err(::open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  RunResult r;
  r.exit_code = wait_exit(spawn(argv, out.get(), err.get(), in_path.c_str()));
  r.out = read_file(out_path);
  r.err = read_file(err_path);
  std::filesystem::remove_all(dir);
  return r;
}

void make_certificate(const std::string& cert_file, const std::string& key_file, int days) {
  RunResult r = run_command({"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                             "ec_paramgen_curve:P-256", "-nodes", "-days", std::to_string(days),
                             "-subj", "/CN=localhost", "-addext",
                             "subjectAltName=DNS:localhost,IP:127.0.0.1", "-keyout", key_file,
                             "-out", cert_file});
  if (r.exit_code != 0) throw std::runtime_error("openssl req failed: " + r.err);
  ::chmod(key_file.c_str(), 0600);
}

std::string openssl_pin(const std::string& cert_file) {
  RunResult r = run_command({"/bin/sh", "-c",
                             "openssl x509 -in '" + cert_file +
                                 "' -pubkey -noout | openssl pkey -pubin -outform der | "
                                 "openssl dgst -sha256 -binary | base64"});
  if (r.exit_code != 0) throw std::runtime_error("openssl pin failed: " + r.err);
  return "sha256/" + r.out.substr(0, r.out.find('\n'));
}

// ---- TestServer -----------------------------------------------------------------------

TestServer::TestServer(ServerOptions options) : options_(std::move(options)), dir_(make_temp_dir()) {
  log_path_ = dir_ + "/server.log";
  static std::atomic<unsigned> servers{0};
  shm_name_ = "iotsocket-e2e-" + std::to_string(::getpid()) + "-" + std::to_string(servers++);
  if (options_.tls) {
    make_certificate(dir_ + "/cert.pem", dir_ + "/key.pem");
  }
  write_config();
}

TestServer::~TestServer() {
  if (running()) stop(SIGKILL);
  ::shm_unlink(("/" + shm_name_).c_str());  // left behind when the server was killed
  std::error_code ec;
  if (std::getenv("IOTSOCKET_E2E_KEEP") == nullptr) std::filesystem::remove_all(dir_, ec);
}

void TestServer::write_config() {
  std::ofstream out(config_path());
  out << "listen: " << options_.listen << "\n"
      << "tls: {enabled: " << (options_.tls ? "true" : "false")
      << ", cert: cert.pem, key: key.pem}\n"
      << "workers: " << options_.workers << "\n"
      << "devices: " << options_.devices << "\n"
      << "fifo: {push: push.fifo, inbound: inbound.fifo"
      << (options_.events ? ", events: events.fifo}\n" : "}\n")
      << "spool: " << options_.spool << "\n"
      << "runtime: {shm_name: " << shm_name_ << ", pid_file: iotsocketd.pid}\n"
      << "timeouts: " << options_.timeouts << "\n"
      << "limits: " << options_.limits << "\n"
      << "log: " << options_.log << "\n"
      << options_.extra_yaml;
}

void TestServer::rewrite_config(const ServerOptions& options) {
  options_ = options;
  write_config();
}

void TestServer::keep_port() {
  options_.listen = "[{address: 127.0.0.1, port: " + std::to_string(port_) + "}]";
  write_config();
}

void TestServer::start() {
  if (running()) throw std::runtime_error("server already running");
  Fd log(::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600));
  struct stat st{};
  ::fstat(log.get(), &st);
  log_offset_ = static_cast<std::size_t>(st.st_size);
  std::vector<std::string> argv = options_.wrapper;
  argv.push_back(binary("iotsocketd"));
  argv.push_back("--config");
  argv.push_back(config_path());
  pid_ = spawn(argv, log.get(), log.get());
  port_ = 0;
  const auto deadline = Clock::now() + 20s;
  while (Clock::now() < deadline) {
    const std::uint16_t port = port_in_log("listening on 127.0.0.1:");
    // Ready when every worker is: a test that spreads devices over workers needs them all.
    if (port != 0 && count_in_log(" ready") >= options_.workers) {
      port_ = port;
      return;
    }
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      throw std::runtime_error("iotsocketd exited at start:\n" + this->log());
    }
    std::this_thread::sleep_for(10ms);
  }
  throw std::runtime_error("iotsocketd did not start listening:\n" + this->log());
}

int TestServer::stop(int signal_number) {
  if (!running()) return -1;
  ::kill(pid_, signal_number);
  int code = wait_exit(pid_);
  pid_ = -1;
  return code;
}

RunResult TestServer::ctl(const std::vector<std::string>& args) const {
  std::vector<std::string> argv{binary("iotsocketctl"), "--config", config_path()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_command(argv);
}

void TestServer::add_devices(std::uint64_t first_id, std::size_t count, const std::string& key) {
  std::string path = dir_ + "/import.txt";
  {
    std::ofstream out(path);
    for (std::size_t i = 0; i < count; ++i) out << first_id + i << ' ' << key << '\n';
  }
  RunResult r = ctl({"devices", "import", "--fast-hash", path});
  if (r.exit_code != 0) throw std::runtime_error("devices import failed: " + r.err);
}

void TestServer::push_lines(std::string_view text) const {
  // The server holds the FIFO open, so this open does not wait for a reader.
  Fd fifo(::open(push_fifo().c_str(), O_WRONLY | O_CLOEXEC));
  if (!fifo) throw std::runtime_error("cannot open " + push_fifo() + ": " + std::strerror(errno));
  while (!text.empty()) {
    const ssize_t n = ::write(fifo.get(), text.data(), text.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw std::runtime_error("writing the push FIFO failed: " + std::string(std::strerror(errno)));
    text.remove_prefix(static_cast<std::size_t>(n));
  }
}

pid_t TestServer::worker_pid(unsigned index) const {
  const std::string text = log();
  const std::string needle = "worker " + std::to_string(index) + " started, pid ";
  const auto at = text.rfind(needle);
  if (at == std::string::npos) return -1;
  return static_cast<pid_t>(std::stol(text.substr(at + needle.size())));
}

std::string TestServer::log() const {
  std::string all = read_file(log_path_);
  return log_offset_ <= all.size() ? all.substr(log_offset_) : all;
}

bool TestServer::wait_for_log(std::string_view needle, std::chrono::milliseconds timeout) const {
  const auto deadline = Clock::now() + timeout;
  do {
    if (log().find(needle) != std::string::npos) return true;
    std::this_thread::sleep_for(10ms);
  } while (Clock::now() < deadline);
  return false;
}

std::uint16_t TestServer::port_in_log(std::string_view prefix) const {
  const std::string text = log();
  const auto at = text.find(prefix);
  if (at == std::string::npos) return 0;
  return static_cast<std::uint16_t>(std::stoi(text.substr(at + prefix.size())));
}

bool TestServer::wait_for_log_count(std::string_view needle, std::size_t count,
                                    std::chrono::milliseconds timeout) const {
  const auto deadline = Clock::now() + timeout;
  do {
    if (count_in_log(needle) >= count) return true;
    std::this_thread::sleep_for(10ms);
  } while (Clock::now() < deadline);
  return false;
}

std::size_t TestServer::count_in_log(std::string_view needle) const {
  std::string text = log();
  std::size_t n = 0;
  for (auto at = text.find(needle); at != std::string::npos; at = text.find(needle, at + 1)) ++n;
  return n;
}

// ---- Device ---------------------------------------------------------------------------

namespace {

// While it lives, reads on `fd` do not wait: poll() may report bytes that are only TLS
// records without data (TLS 1.3 session tickets), and a blocking SSL_read would then sit
// out the socket's whole receive timeout.
class NonBlocking {
 public:
  explicit NonBlocking(int fd) : fd_(fd), flags_(::fcntl(fd, F_GETFL)) {
    ::fcntl(fd_, F_SETFL, flags_ | O_NONBLOCK);
  }
  ~NonBlocking() { ::fcntl(fd_, F_SETFL, flags_); }
  NonBlocking(const NonBlocking&) = delete;
  NonBlocking& operator=(const NonBlocking&) = delete;

 private:
  int fd_;
  int flags_;
};

}  // namespace

Device::Device(std::uint16_t port, bool tls, const std::string& source_ip) : use_tls_(tls) {
  fd_.reset(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in src{};
  src.sin_family = AF_INET;
  ::inet_pton(AF_INET, source_ip.c_str(), &src.sin_addr);
  int on = 1;
  ::setsockopt(fd_.get(), IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &on, sizeof on);
  if (::bind(fd_.get(), reinterpret_cast<sockaddr*>(&src), sizeof src) != 0) {
    fd_.reset();
    return;
  }
  timeval tv{5, 0};
  ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd_.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in dst{};
  dst.sin_family = AF_INET;
  dst.sin_port = htons(port);
  ::inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr);
  if (::connect(fd_.get(), reinterpret_cast<sockaddr*>(&dst), sizeof dst) != 0) {
    fd_.reset();
    return;
  }
  if (!use_tls_) return;
  // Like the legacy client: TLS without certificate checks (the client issue adds pinning).
  ctx_.reset(SSL_CTX_new(TLS_client_method()));
  SSL_CTX_set_verify(ctx_.get(), SSL_VERIFY_NONE, nullptr);
  Ssl ssl(SSL_new(ctx_.get()));
  SSL_set_fd(ssl.get(), fd_.get());
  if (SSL_connect(ssl.get()) == 1) ssl_ = std::move(ssl);
  ERR_clear_error();
}

Device::~Device() {
  if (!fd_.valid()) return;
  if (ssl_) {
    (void)SSL_shutdown(ssl_.get());
    ERR_clear_error();
  }
  ::shutdown(fd_.get(), SHUT_WR);
  wait_closed(2s);
}

bool Device::send_raw(std::string_view bytes) {
  if (!connected()) return false;
  while (!bytes.empty()) {
    if (use_tls_) {
      std::size_t written = 0;
      if (SSL_write_ex(ssl_.get(), bytes.data(), bytes.size(), &written) != 1) {
        ERR_clear_error();
        return false;
      }
      bytes.remove_prefix(written);
    } else {
      ssize_t n = ::send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<std::size_t>(n));
    }
  }
  return true;
}

bool Device::send_frame(protocol::DeviceId id, std::string_view key, std::string_view payload,
                        std::optional<protocol::Time> time) {
  std::string frame;
  if (protocol::append_device_frame(frame, id, key, time.value_or(fresh_time()), payload)) {
    return false;
  }
  return send_raw(frame);
}

bool Device::wait_closed(std::chrono::milliseconds timeout) {
  if (!fd_.valid()) return true;
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    pollfd p{fd_.get(), POLLIN, 0};
    int left = static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count());
    if (::poll(&p, 1, std::max(left, 1)) <= 0) continue;
    char buf[4096];
    if (use_tls_ && ssl_) {
      NonBlocking no_wait(fd_.get());
      int n = SSL_read(ssl_.get(), buf, sizeof buf);
      if (n <= 0) {
        int e = SSL_get_error(ssl_.get(), n);
        ERR_clear_error();
        if (e != SSL_ERROR_WANT_READ) return true;
      }
    } else {
      ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
      if (n <= 0) return true;
    }
  }
  return false;
}

bool Device::read_once(std::chrono::milliseconds wait) {
  if (!connected()) return false;
  char buf[16384];
  if (!(use_tls_ && SSL_pending(ssl_.get()) > 0)) {
    pollfd p{fd_.get(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(wait.count())) <= 0) return true;
  }
  std::size_t got = 0;
  if (use_tls_) {
    NonBlocking no_wait(fd_.get());
    if (SSL_read_ex(ssl_.get(), buf, sizeof buf, &got) != 1) {
      const int e = SSL_get_error(ssl_.get(), 0);
      ERR_clear_error();
      return e == SSL_ERROR_WANT_READ;
    }
  } else {
    const ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
    if (n <= 0) return false;
    got = static_cast<std::size_t>(n);
  }
  raw_.append(buf, got);
  decoder_.feed(std::string_view(buf, got));
  for (;;) {
    const protocol::Decoded d = decoder_.next();
    if (d.status == protocol::DecodeStatus::need_more) break;
    if (d.status == protocol::DecodeStatus::failed) {
      ++bad_frames_;
      return false;
    }
    pushes_.push_back(PushFrame{d.frame.device, d.frame.time, std::string(d.frame.body)});
  }
  return true;
}

std::vector<PushFrame> Device::read_pushes(std::size_t count, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (pushes_.size() < count && Clock::now() < deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (!read_once(std::max(left, std::chrono::milliseconds(1)))) break;
  }
  std::vector<PushFrame> out;
  const std::size_t n = std::min(count, pushes_.size());
  out.assign(std::make_move_iterator(pushes_.begin()),
             std::make_move_iterator(pushes_.begin() + static_cast<std::ptrdiff_t>(n)));
  pushes_.erase(pushes_.begin(), pushes_.begin() + static_cast<std::ptrdiff_t>(n));
  return out;
}

// ---- InboundReader --------------------------------------------------------------------

InboundReader::InboundReader(const std::string& fifo_path)
    : fd_(::open(fifo_path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC)) {
  if (!fd_) throw std::runtime_error("cannot open " + fifo_path + ": " + std::strerror(errno));
}

std::vector<protocol::Record> InboundReader::read(std::size_t count, std::chrono::milliseconds timeout) {
  std::vector<protocol::Record> out = std::move(early_);
  early_.clear();
  const auto deadline = Clock::now() + timeout;
  std::string buf(1 << 16, '\0');
  while (out.size() < count && Clock::now() < deadline) {
    for (;;) {
      auto l = lines_.next();
      if (l.status == protocol::LineStatus::need_more) break;
      if (l.status == protocol::LineStatus::too_long) {
        bad_lines_.emplace_back("<too long>");
        continue;
      }
      auto record = protocol::parse_record(l.text);
      if (record) {
        out.push_back(std::move(*record));
      } else {
        bad_lines_.emplace_back(l.text);
      }
    }
    if (out.size() >= count) break;
    pollfd p{fd_.get(), POLLIN, 0};
    ::poll(&p, 1, 50);
    ssize_t n = ::read(fd_.get(), buf.data(), buf.size());
    if (n > 0) {
      lines_.feed(std::string_view(buf.data(), static_cast<std::size_t>(n)));
    } else {
      std::this_thread::sleep_for(5ms);  // no writer: poll() reports POLLHUP at once
    }
  }
  if (out.size() > count) {
    early_.assign(std::make_move_iterator(out.begin() + static_cast<std::ptrdiff_t>(count)),
                  std::make_move_iterator(out.end()));
    out.resize(count);
  }
  return out;
}

// ---- times ----------------------------------------------------------------------------

protocol::Time fresh_time() {
  static std::mutex lock;  // tests send from several threads
  const std::lock_guard hold(lock);
  static protocol::TimeStamper stamper;
  return *stamper.next(protocol::to_time(std::chrono::system_clock::now()), std::chrono::seconds(1));
}

std::string push_record(std::uint64_t id, std::string_view payload) {
  return std::to_string(id) + " " + std::string(payload) + "\n";
}

std::unique_ptr<Device> logged_in(TestServer& server, InboundReader& reader, std::uint64_t id,
                                  std::string_view key, std::optional<protocol::Time> time) {
  auto d = std::make_unique<Device>(server.port());
  EXPECT_TRUE(d->send_frame(protocol::DeviceId{id}, key, "hello-server", time));
  EXPECT_EQ(reader.read(1).size(), 1u) << server.log();
  return d;
}

// --- the metrics endpoint ---

namespace {

// Prints every sample as "name{label="value",...} value", labels sorted, one per line;
// exits non-zero (with the parser's complaint) when the text is not the exposition format.
constexpr const char* kParser = R"(
import sys
from prometheus_client.parser import text_string_to_metric_families
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        labels = ",".join('%s="%s"' % (k, v) for k, v in sorted(s.labels.items()))
        print("%s%s %r %s" % (s.name, "{" + labels + "}" if labels else "", s.value, family.type))
)";

}  // namespace

Fd connect_local(std::uint16_t port) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  ::inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) fd.reset();
  return fd;
}

Scrape http_get(std::uint16_t port, const std::string& path) {
  Fd fd = connect_local(port);
  if (!fd) return {};
  const std::string request = "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
  if (::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    return {};
  }
  std::string all;
  const auto deadline = Clock::now() + 5s;
  while (Clock::now() < deadline) {
    pollfd p{fd.get(), POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    char buf[16384];
    const ssize_t got = ::recv(fd.get(), buf, sizeof buf, 0);
    if (got <= 0) break;
    all.append(buf, static_cast<std::size_t>(got));
  }
  Scrape s;
  const auto split = all.find("\r\n\r\n");
  if (split == std::string::npos || all.size() < 12) return s;
  s.status = std::stoi(all.substr(9, 3));
  s.head = all.substr(0, split);
  s.body = all.substr(split + 4);
  return s;
}

Samples parse_with_prometheus_client(const std::string& text) {
  RunResult r = run_command({"/usr/bin/python3", "-c", kParser}, text);
  EXPECT_EQ(r.exit_code, 0) << "prometheus_client refused the text: " << r.err << "\n" << text;
  Samples samples;
  std::istringstream lines(r.out);
  std::string name, type;
  double value = 0;
  while (lines >> name >> value >> type) samples[name] = value;
  return samples;
}

std::uint16_t metrics_port(const TestServer& server) { return server.port_in_log("metrics on 127.0.0.1:"); }

}  // namespace iotsocket::e2e
