#include "tests/unit/client/fake_server.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <iterator>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <stdexcept>

#include "protocol/encoder.hpp"
#include "protocol/errors.hpp"

namespace iotsocket::client::test {
namespace {

// One handshake, or one scripted write, takes at most this long; then the server gives up
// on the connection (a client that stopped reading must not hang the test).
constexpr Millis kIoDeadline{3000};
// How long the server thread sleeps in poll() before it looks at the stop flag again.
constexpr int kSliceMs = 50;
// Bytes read in one go before they are recorded (so reset_after() acts in time).
constexpr std::size_t kReadBatch = 256 * 1024;

int millis_left(SteadyClock::time_point deadline) {
  const auto left = std::chrono::duration_cast<Millis>(deadline - SteadyClock::now()).count();
  return static_cast<int>(std::clamp<Millis::rep>(left, 0, 60'000));
}

bool wait_fd(int fd, short events, SteadyClock::time_point deadline) {
  pollfd p{fd, events, 0};
  return ::poll(&p, 1, millis_left(deadline)) > 0;
}

// What a shell command printed; throws when it fails (a test cannot go on without it).
std::string shell_output(const std::string& command) {
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("popen failed: " + command);
  std::string out;
  char buffer[512];
  std::size_t n = 0;
  while ((n = std::fread(buffer, 1, sizeof buffer, pipe)) > 0) out.append(buffer, n);
  if (::pclose(pipe) != 0) throw std::runtime_error("command failed: " + command);
  return out;
}

std::string trimmed(std::string text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())) != 0) text.pop_back();
  return text;
}

Certificate make_certificate(const std::string& dir, const std::string& name) {
  Certificate certificate{dir + "/" + name + ".pem", dir + "/" + name + ".key", ""};
  shell_output(
      "/usr/bin/openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 "
      "-subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout " +
      certificate.key_file + " -out " + certificate.cert_file + " 2>/dev/null");
  certificate.pin = openssl_pin(certificate.cert_file);
  return certificate;
}

// Owns this process's certificate directory and removes it at exit.
class CertificateStore {
 public:
  CertificateStore() {
    char dir[] = "/tmp/iotsocket-client-test-XXXXXX";
    if (::mkdtemp(dir) == nullptr) throw std::runtime_error("mkdtemp failed");
    certificates_.dir = dir;
    try {
      certificates_.server = make_certificate(certificates_.dir, "server");
      certificates_.other = make_certificate(certificates_.dir, "other");
    } catch (...) {
      remove();
      throw;
    }
  }
  ~CertificateStore() { remove(); }
  CertificateStore(const CertificateStore&) = delete;
  CertificateStore& operator=(const CertificateStore&) = delete;

  const Certificates& certificates() const noexcept { return certificates_; }

 private:
  void remove() noexcept {
    std::error_code ignored;
    std::filesystem::remove_all(certificates_.dir, ignored);
  }
  Certificates certificates_;
};

}  // namespace

const Certificates& certificates() {
  static const CertificateStore store;
  return store.certificates();
}

std::string openssl_pin(const std::string& cert_file) {
  const std::string digest = shell_output(
      "/usr/bin/openssl x509 -in " + cert_file +
      " -pubkey -noout | /usr/bin/openssl pkey -pubin -outform der"
      " | /usr/bin/openssl dgst -sha256 -binary | base64");
  return "sha256/" + trimmed(digest);
}

// ---- one server-side TLS connection ----

// Owns the accepted socket and its SSL. The socket is non-blocking; every wait in here has
// kIoDeadline as its bound.
class FakeServer::Tls {
 public:
  enum class Read { data, again, closed };

  Tls(SSL_CTX* ctx, Fd fd) : fd_(std::move(fd)), ssl_(SSL_new(ctx)) {
    if (ssl_) SSL_set_fd(ssl_.get(), fd_.get());
  }

  int fd() const noexcept { return fd_.get(); }
  bool has_buffered_input() const noexcept { return SSL_pending(ssl_.get()) > 0; }

  bool handshake() {
    if (!ssl_) return false;
    const auto deadline = SteadyClock::now() + kIoDeadline;
    for (;;) {
      ERR_clear_error();
      const int rc = SSL_accept(ssl_.get());
      if (rc == 1) return true;
      if (!wait_for_retry(rc, deadline)) return false;
    }
  }

  // False when the peer went away (or stopped reading for kIoDeadline).
  bool write_all(std::string_view bytes) {
    const auto deadline = SteadyClock::now() + kIoDeadline;
    while (!bytes.empty()) {
      std::size_t wrote = 0;
      ERR_clear_error();
      const int rc = SSL_write_ex(ssl_.get(), bytes.data(), bytes.size(), &wrote);
      if (rc == 1) {
        bytes.remove_prefix(wrote);
        continue;
      }
      if (!wait_for_retry(rc, deadline)) return false;
    }
    return true;
  }

  // Appends what is readable now to `out`.
  Read read(std::string& out) {
    char buffer[16 * 1024];
    std::size_t got = 0;
    ERR_clear_error();
    const int rc = SSL_read_ex(ssl_.get(), buffer, sizeof buffer, &got);
    if (rc == 1) {
      out.append(buffer, got);
      return Read::data;
    }
    const int error = SSL_get_error(ssl_.get(), rc);
    ERR_clear_error();
    return error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE ? Read::again
                                                                          : Read::closed;
  }

  // close_notify (without waiting for the peer's), then close().
  void close_gracefully() {
    (void)SSL_shutdown(ssl_.get());
    ERR_clear_error();
  }

  // A FIN at once followed by an RST (SO_LINGER with a zero timeout, then close()). The
  // FIN moves the client's socket to CLOSE_WAIT, where the RST makes its next write() fail
  // with EPIPE, the error that raises SIGPIPE; a bare RST gives ECONNRESET, which does not.
  void reset() {
    ::shutdown(fd_.get(), SHUT_WR);
    const linger abortive{1, 0};
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_LINGER, &abortive, sizeof abortive);
    ssl_.reset();
    fd_.reset();
  }

 private:
  // After a failed SSL call: waits until it may be retried; false when it may not.
  bool wait_for_retry(int rc, SteadyClock::time_point deadline) {
    const int error = SSL_get_error(ssl_.get(), rc);
    ERR_clear_error();
    if (error == SSL_ERROR_WANT_READ) return wait_fd(fd_.get(), POLLIN, deadline);
    if (error == SSL_ERROR_WANT_WRITE) return wait_fd(fd_.get(), POLLOUT, deadline);
    return false;
  }

  Fd fd_;
  Ssl ssl_;
};

// ---- the server ----

FakeServer::FakeServer(const Certificate& certificate) {
  auto ctx = make_server_context(certificate.cert_file, certificate.key_file);
  if (!ctx) throw std::runtime_error("fake server: " + ctx.error());
  ctx_ = std::move(*ctx);

  listener_ = Fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  ::inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  socklen_t length = sizeof address;
  if (!listener_ || ::bind(listener_.get(), reinterpret_cast<sockaddr*>(&address), length) != 0 ||
      ::listen(listener_.get(), 16) != 0 ||
      ::getsockname(listener_.get(), reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    throw std::runtime_error("fake server: cannot listen on 127.0.0.1");
  }
  port_ = ntohs(address.sin_port);
  wake_ = Fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!wake_) throw std::runtime_error("fake server: eventfd failed");
  thread_ = std::thread([this] { run(); });
}

FakeServer::~FakeServer() {
  stopping_ = true;
  wake();
  if (thread_.joinable()) thread_.join();
}

void FakeServer::refuse_logins(bool on) {
  std::lock_guard lock(mutex_);
  refuse_logins_ = on;
}

void FakeServer::write_after_login(std::string bytes) {
  std::lock_guard lock(mutex_);
  after_login_ = std::move(bytes);
}

void FakeServer::write(std::string bytes, std::size_t chunk, Millis pause) {
  add(Action{Action::Kind::write, std::move(bytes), chunk, pause});
}

void FakeServer::close_current() { add(Action{Action::Kind::close, {}, 0, Millis{0}}); }

void FakeServer::reset_after(std::size_t bytes) {
  {
    std::lock_guard lock(mutex_);
    reset_after_ = bytes;
  }
  wake();
}

std::size_t FakeServer::connection_count() const {
  std::lock_guard lock(mutex_);
  return connections_.size();
}

bool FakeServer::wait_until(const std::function<bool(const std::vector<Connection>&)>& done,
                            Millis timeout) const {
  std::unique_lock lock(mutex_);
  return changed_.wait_for(lock, timeout, [&] { return done(connections_); });
}

void FakeServer::add(Action action) {
  {
    std::lock_guard lock(mutex_);
    actions_.push_back(std::move(action));
  }
  wake();
}

void FakeServer::wake() const noexcept {
  const std::uint64_t one = 1;
  if (::write(wake_.get(), &one, sizeof one) < 0) {
    // The counter is full, so the thread is awake anyway.
  }
}

void FakeServer::drain_wake() const noexcept {
  std::uint64_t count = 0;
  if (::read(wake_.get(), &count, sizeof count) < 0) {
    // Nothing to drain.
  }
}

// The thread: accepts connections one by one until the server is destroyed.
void FakeServer::run() {
  // A write to a client that is gone raises SIGPIPE in this thread. Blocked here, it stays
  // pending on this thread and is dropped with it; the test's thread, where the client
  // runs, keeps the default disposition, so a SIGPIPE the client lets through still kills.
  sigset_t pipe;
  sigemptyset(&pipe);
  sigaddset(&pipe, SIGPIPE);
  ::pthread_sigmask(SIG_BLOCK, &pipe, nullptr);

  while (!stopping_) {
    pollfd fds[2] = {{listener_.get(), POLLIN, 0}, {wake_.get(), POLLIN, 0}};
    if (::poll(fds, 2, kSliceMs) <= 0) continue;
    if (fds[1].revents != 0) drain_wake();
    if (fds[0].revents == 0) continue;
    Fd fd(::accept4(listener_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (fd) serve(std::move(fd), SteadyClock::now());
  }
}

void FakeServer::serve(Fd fd, SteadyClock::time_point accepted_at) {
  int on = 1;
  // Scripted chunks go out as written, not merged by Nagle.
  ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &on, sizeof on);
  std::size_t index = 0;
  {
    std::lock_guard lock(mutex_);
    Connection connection;
    connection.accepted_at = accepted_at;
    connections_.push_back(std::move(connection));
    index = connections_.size() - 1;
  }
  changed_.notify_all();

  Tls tls(ctx_.get(), std::move(fd));
  if (!tls.handshake()) {
    end(index, false);
    return;
  }
  switch (exchange(tls, index)) {
    case Ending::close:
      tls.close_gracefully();
      break;
    case Ending::reset:
      tls.reset();
      break;
    case Ending::refuse:  // as a server refusing a login: no close_notify, just close()
    case Ending::peer_closed:
    case Ending::stop:
      break;
  }
  end(index, true);
}

void FakeServer::end(std::size_t index, bool handshake_done) {
  {
    std::lock_guard lock(mutex_);
    connections_[index].handshake_done = handshake_done;
    connections_[index].ended = true;
  }
  changed_.notify_all();
}

// Reads, records and follows the script until the connection is to end.
FakeServer::Ending FakeServer::exchange(Tls& tls, std::size_t index) {
  {
    std::lock_guard lock(mutex_);
    connections_[index].handshake_done = true;
  }
  changed_.notify_all();
  protocol::Decoder decoder(protocol::Direction::from_device);
  bool first_frame_seen = false;
  while (!stopping_) {
    if (auto ending = run_actions(tls)) return *ending;
    if (!tls.has_buffered_input()) {
      pollfd fds[2] = {{tls.fd(), POLLIN, 0}, {wake_.get(), POLLIN, 0}};
      if (::poll(fds, 2, kSliceMs) <= 0) continue;
      if (fds[1].revents != 0) drain_wake();
      if (fds[0].revents == 0) continue;
    }
    std::string bytes;
    Tls::Read read = Tls::Read::data;
    while (bytes.size() < kReadBatch && (read = tls.read(bytes)) == Tls::Read::data) {
    }
    const std::size_t frames = record(index, bytes, decoder);
    if (read == Tls::Read::closed) return Ending::peer_closed;
    if (!first_frame_seen && frames > 0) {
      first_frame_seen = true;
      if (auto ending = after_first_frame(tls)) return *ending;
    }
    if (reset_due(index)) return Ending::reset;
  }
  return Ending::stop;
}

// The scripted actions, one at a time, in order.
std::optional<FakeServer::Ending> FakeServer::run_actions(Tls& tls) {
  for (;;) {
    Action action;
    {
      std::lock_guard lock(mutex_);
      if (actions_.empty()) return std::nullopt;
      action = std::move(actions_.front());
      actions_.pop_front();
    }
    if (action.kind == Action::Kind::close) return Ending::close;
    const std::size_t chunk = action.chunk == 0 ? action.bytes.size() : action.chunk;
    for (std::size_t at = 0; at < action.bytes.size(); at += chunk) {
      if (!tls.write_all(std::string_view(action.bytes).substr(at, chunk))) {
        return Ending::peer_closed;
      }
      if (action.pause.count() > 0) std::this_thread::sleep_for(action.pause);
    }
  }
}

std::optional<FakeServer::Ending> FakeServer::after_first_frame(Tls& tls) {
  std::optional<std::string> bytes;
  {
    std::lock_guard lock(mutex_);
    if (refuse_logins_) return Ending::refuse;
    bytes.swap(after_login_);
  }
  if (bytes && !tls.write_all(*bytes)) return Ending::peer_closed;
  return std::nullopt;
}

// Stores what arrived and the frames decoded from it; returns the connection's frame count.
std::size_t FakeServer::record(std::size_t index, const std::string& bytes,
                               protocol::Decoder& decoder) {
  std::vector<ReceivedFrame> frames;
  std::string error;
  const SteadyClock::time_point now = SteadyClock::now();
  decoder.feed(bytes);
  for (;;) {
    const protocol::Decoded decoded = decoder.next();
    if (decoded.status == protocol::DecodeStatus::need_more) break;
    if (decoded.status == protocol::DecodeStatus::failed) {
      error = protocol::name(decoded.error);
      break;
    }
    const protocol::FrameView& f = decoded.frame;
    frames.push_back(ReceivedFrame{f.device.value, std::string(f.key), std::string(f.time_text),
                                   f.time, std::string(f.body), now});
  }
  std::size_t count = 0;
  {
    std::lock_guard lock(mutex_);
    Connection& connection = connections_[index];
    connection.received += bytes;
    std::move(frames.begin(), frames.end(), std::back_inserter(connection.frames));
    if (!error.empty()) connection.framing_error = error;
    count = connection.frames.size();
  }
  changed_.notify_all();
  return count;
}

bool FakeServer::reset_due(std::size_t index) {
  std::lock_guard lock(mutex_);
  return reset_after_ && connections_[index].received.size() >= *reset_after_;
}

// ---- frames and helpers ----

protocol::Time now_time() { return protocol::to_time(std::chrono::system_clock::now()); }

std::string push_frame(std::uint64_t device, protocol::Time time, std::string_view payload) {
  std::string out;
  if (const auto error = protocol::append_push_frame(out, protocol::DeviceId{device}, time, payload)) {
    ADD_FAILURE() << "append_push_frame: " << protocol::name(*error);
  }
  return out;
}

std::uint16_t free_port() {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in address{};
  address.sin_family = AF_INET;
  ::inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
  socklen_t length = sizeof address;
  if (!fd || ::bind(fd.get(), reinterpret_cast<sockaddr*>(&address), length) != 0 ||
      ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    ADD_FAILURE() << "cannot bind a socket on 127.0.0.1";
    return 0;
  }
  return ntohs(address.sin_port);  // released when fd closes: nothing listens there
}

Options test_options(std::uint16_t port) {
  using namespace std::chrono_literals;
  Options options;
  options.host = "127.0.0.1";
  options.port = port;
  options.device_id = "1234567890";
  options.key = "k3y-of-the-test";
  options.pins = {certificates().server.pin};
  options.connect_timeout = 2s;
  options.login_grace = 200ms;
  options.backoff_initial = 50ms;
  options.backoff_max = 200ms;
  const bool verbose = std::getenv("CLIENT_TEST_LOG") != nullptr;
  options.log = [verbose](LogLevel, std::string_view line) {
    if (verbose) std::cerr << "client: " << line << "\n";
  };
  return options;
}

std::unique_ptr<Client> make_client(const Options& options) {
  Error error;
  auto client = Client::create(options, &error);
  if (!client) ADD_FAILURE() << "Client::create: " << name(error.code) << ": " << error.message;
  return client;
}

std::unique_ptr<Client> connected_client(const Options& options) {
  auto client = make_client(options);
  if (!client) return nullptr;
  if (const auto error = client->connect()) {
    ADD_FAILURE() << "connect: " << name(error->code) << ": " << error->message;
    return nullptr;
  }
  return client;
}

std::vector<std::string> bodies(const Connection& connection) {
  std::vector<std::string> out;
  for (const ReceivedFrame& frame : connection.frames) out.push_back(frame.body);
  return out;
}

std::size_t Events::count(ErrorCode code) const {
  return static_cast<std::size_t>(std::count_if(
      errors.begin(), errors.end(), [code](const Error& e) { return e.code == code; }));
}

bool Events::fatal() const {
  return std::any_of(errors.begin(), errors.end(), [](const Error& e) { return e.fatal; });
}

std::string Events::describe() const {
  std::string text = std::to_string(pushes.size()) + " pushes; errors:";
  for (const Error& e : errors) {
    text += std::string(" [") + std::string(name(e.code)) + (e.fatal ? ", fatal" : "") + ": " +
            e.message + "]";
  }
  return text;
}

bool drive_until(Client& client, Events& events, const std::function<bool()>& done,
                 Millis timeout) {
  const auto deadline = SteadyClock::now() + timeout;
  while (!done() && !events.fatal() && SteadyClock::now() < deadline) {
    Event event = client.poll(Millis{10});
    if (event.push) events.pushes.push_back(std::move(*event.push));
    if (event.error) events.errors.push_back(std::move(*event.error));
  }
  return done();
}

void drive_for(Client& client, Events& events, Millis duration) {
  drive_until(client, events, [] { return false; }, duration);
}

}  // namespace iotsocket::client::test
