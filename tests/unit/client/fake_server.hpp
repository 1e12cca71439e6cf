// The client's test harness: certificates made with the openssl command, a scripted
// in-process IOT/1.1 server, and a loop that drives a Client while that server works.
//
// FakeServer listens on 127.0.0.1, port 0, and serves one connection at a time in its own
// thread (the client under test is single-threaded and runs in the test's thread, so the
// two never wait for each other). It records, per connection, when it was accepted, every
// byte received after TLS and the device frames decoded from them, and does what the test
// scripted: refuse logins, write bytes, close or reset the connection. All of its state
// sits behind one mutex; every wait in it has a deadline, so a broken client makes a test
// fail, never hang.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/fd.hpp"
#include "common/tls.hpp"
#include "iotsocket/client.hpp"
#include "protocol/decoder.hpp"
#include "protocol/time.hpp"

namespace iotsocket::client::test {

using Millis = std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

// ---- certificates ----

// A self-signed P-256 certificate for CN=localhost with SAN DNS:localhost, IP:127.0.0.1.
struct Certificate {
  std::string cert_file;
  std::string key_file;
  std::string pin;  // "sha256/BASE64" as the openssl command line computes it
};

// The certificates of this test process, made once in a temporary directory that is
// removed at exit: `server` is what the fake server presents, `other` is a stranger.
struct Certificates {
  std::string dir;
  Certificate server;
  Certificate other;
};
const Certificates& certificates();

// The SPKI pin of a PEM certificate file, computed by the openssl command line (through
// /bin/sh), independently of the library's pin_of().
std::string openssl_pin(const std::string& cert_file);

// ---- the fake server ----

// A device frame as the server decoded it (copies: the decoder's views do not last).
struct ReceivedFrame {
  std::uint64_t device = 0;
  std::string key;
  std::string time_text;
  protocol::Time time{};
  std::string body;
  SteadyClock::time_point received_at{};  // when the server decoded it
};

struct Connection {
  SteadyClock::time_point accepted_at{};
  bool handshake_done = false;
  bool ended = false;          // the server is done with it (peer closed, or scripted end)
  std::string received;        // every byte after TLS, in order
  std::vector<ReceivedFrame> frames;
  std::string framing_error;   // the FrameError name when the bytes broke framing
};

class FakeServer {
 public:
  // Throws std::runtime_error when the certificate does not load or the socket fails.
  explicit FakeServer(const Certificate& certificate);
  ~FakeServer();
  FakeServer(const FakeServer&) = delete;
  FakeServer& operator=(const FakeServer&) = delete;

  std::uint16_t port() const noexcept { return port_; }

  // --- the script. Actions wait for a connection when none is up.
  // From now on, close every connection right after its first frame (a refused login).
  void refuse_logins(bool on);
  // Written to the next connection right after its first (login) frame, once.
  void write_after_login(std::string bytes);
  // Written to the current connection: in one SSL_write, or in `chunk`-byte writes with
  // `pause` after each.
  void write(std::string bytes, std::size_t chunk = 0, Millis pause = Millis{0});
  // Closes the current connection (close_notify, then close()).
  void close_current();
  // From now on, resets each connection once it received `bytes`: a FIN, then at once an
  // RST (SO_LINGER 0, close()), which makes the client's next write() fail with EPIPE.
  // Without that FIN the write fails with ECONNRESET, and no SIGPIPE would be raised.
  void reset_after(std::size_t bytes);

  // --- what happened
  // Runs `look` on the connections so far, under the lock (nothing is copied).
  template <class Look>
  auto inspect(Look&& look) const {
    std::lock_guard lock(mutex_);
    return look(connections_);
  }
  std::size_t connection_count() const;
  // Waits until `done(connections)` holds (checked under the lock) or `timeout` passes.
  bool wait_until(const std::function<bool(const std::vector<Connection>&)>& done,
                  Millis timeout) const;

 private:
  struct Action {
    enum class Kind { write, close } kind = Kind::write;
    std::string bytes;
    std::size_t chunk = 0;
    Millis pause{0};
  };
  enum class Ending { peer_closed, close, refuse, reset, stop };
  class Tls;  // one server-side TLS connection (fake_server.cpp)

  void run();
  void serve(Fd fd, SteadyClock::time_point accepted_at);
  Ending exchange(Tls& tls, std::size_t index);
  std::optional<Ending> run_actions(Tls& tls);
  std::optional<Ending> after_first_frame(Tls& tls);
  std::size_t record(std::size_t index, const std::string& bytes, protocol::Decoder& decoder);
  bool reset_due(std::size_t index);
  void end(std::size_t index, bool handshake_done);
  void add(Action action);
  void wake() const noexcept;
  void drain_wake() const noexcept;

  SslCtx ctx_;
  Fd listener_;
  Fd wake_;  // an eventfd: the thread's poll() returns when the script changes
  std::uint16_t port_ = 0;

  mutable std::mutex mutex_;
  mutable std::condition_variable changed_;
  std::vector<Connection> connections_;
  std::deque<Action> actions_;
  std::optional<std::string> after_login_;
  std::optional<std::size_t> reset_after_;
  bool refuse_logins_ = false;

  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

// ---- frames and helpers ----

protocol::Time now_time();
// A push frame as the legacy server writes it.
std::string push_frame(std::uint64_t device, protocol::Time time, std::string_view payload);
// A port on 127.0.0.1 where nothing listens (bound once, then released).
std::uint16_t free_port();

// Options for a client of `port` that trusts the `server` certificate by its pin, with
// timings short enough for tests. Logs go nowhere unless CLIENT_TEST_LOG is set.
Options test_options(std::uint16_t port);
// Client::create() that must succeed; the test fails (and gets nullptr) otherwise.
std::unique_ptr<Client> make_client(const Options& options);

// make_client(), then connect() that must succeed; nullptr (and a failed test) otherwise.
std::unique_ptr<Client> connected_client(const Options& options);
// The bodies of every frame a connection received, in order.
std::vector<std::string> bodies(const Connection& connection);

// What poll() brought back while a test drove the client.
struct Events {
  std::vector<Push> pushes;
  std::vector<Error> errors;

  std::size_t count(ErrorCode code) const;
  bool fatal() const;
  std::string describe() const;  // for failure messages
};

// Polls `client` in short slices until `done()` holds, a fatal error comes back (every later
// poll would return it at once) or `timeout` passes. Returns done().
bool drive_until(Client& client, Events& events, const std::function<bool()>& done,
                 Millis timeout);
// Polls `client` for the whole `duration`.
void drive_for(Client& client, Events& events, Millis duration);

}  // namespace iotsocket::client::test
