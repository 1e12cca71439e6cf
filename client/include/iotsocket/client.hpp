// libiotsocket-client: one IOT/1.1 device connection over TLS, for the device side.
//
//   iotsocket::client::Options options;
//   options.host = "iot.example.com";
//   options.device_id = "1234567890";
//   options.key = "...";
//   options.pins = {"sha256/..."};            // or ca_file, or cert_file
//   auto client = iotsocket::client::Client::create(options);   // checks the options
//   client->send("temp=21.5");                // queued; written when connected
//   auto event = client->poll(std::chrono::seconds(10));   // I/O, reconnects, one push
//
// The client is single-threaded and drives its own I/O inside connect(), send(), poll() and
// run_for(): use one Client per thread. It needs only OpenSSL.
//
// What it guarantees:
// - Frames are written byte for byte as the legacy Python client writes them, each with a
//   TIME above the one before (0.1 ms resolution), also across reconnects.
// - Every push frame is checked as docs/PROTOCOL.md says (format, |TIME - clock| < tolerance,
//   no TIME seen twice), and every frame of a read is delivered, not only the first.
// - A lost connection is re-established with exponential backoff and jitter; frames sent
//   meanwhile wait in a bounded queue and go out, in order, after the next login.
// - The connection is renewed on its own before the server's maximum connection age.
// - IOT/1.1 has no acknowledgement: a frame written just as the connection breaks may be
//   lost, and the client cannot know. Everything queued after that is delivered.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace iotsocket::client {

using Duration = std::chrono::milliseconds;

// What went wrong, as a value a caller can switch on. Names are stable (name()).
enum class ErrorCode {
  bad_options,           // an option is missing or wrong; the message names it (fatal)
  bad_payload,           // send(): under 5 or over 62534 bytes once "|#|" is removed and
                         // the ends are stripped; nothing was queued
  queue_full,            // send(): Options::queue_limit frames are waiting already
  server_gone,           // cannot reach the server (refused, timed out, no such host), or
                         // the connection was lost; the client reconnects
  tls_failed,            // the TLS handshake failed for a reason other than trust
  certificate_rejected,  // the server's chain does not verify against ca_file, or its name
                         // does not match (fatal)
  pin_mismatch,          // the server's certificate matches neither cert_file nor a pin (fatal)
  auth_refused,          // the server closed the connection right after the login frame:
                         // wrong key, unknown or disabled device, the device is connected
                         // elsewhere, or this clock is off (fatal after max_auth_failures)
  clock_skew,            // a push whose TIME is off by the tolerance or more (dropped)
  replayed_push,         // a push whose TIME was seen before (dropped)
  bad_server_frame,      // a frame from the server breaks docs/PROTOCOL.md; the connection is
                         // renewed (or, for a push to another device ID, the push dropped)
  closed,                // close() was called (fatal)
};
std::string_view name(ErrorCode code) noexcept;

struct Error {
  ErrorCode code = ErrorCode::server_gone;
  std::string message;  // one line, for logs and people
  bool fatal = false;   // the client has stopped: every later call returns this error
};

struct Push {
  std::string payload;                          // the body, stripped (docs/PROTOCOL.md rule 3)
  std::chrono::system_clock::time_point time;   // the frame's TIME
};

// What poll() brings back: a push, or an error, or neither (the timeout passed).
struct Event {
  std::optional<Push> push;
  std::optional<Error> error;
};

enum class LogLevel { debug, info, warning, error };

struct Options {
  // --- the server and the device
  std::string host = "127.0.0.1";
  std::uint16_t port = 9000;
  std::string device_id;  // 1 to 10 digits ("42" and "0000000042" are one device)
  std::string key;        // printable ASCII, no ':' and no spaces

  // --- how the server is authenticated: at least one of the first three, or insecure.
  std::string ca_file;     // PEM CA bundle; the chain must verify and the name match
  std::string cert_file;   // PEM file holding the server's own certificate (the legacy
                           // client's cert_path): the server must present exactly it
  std::vector<std::string> pins;  // "sha256/BASE64" of the SubjectPublicKeyInfo, as OkHttp
                                  // and HPKP write them; any one may match
  bool insecure = false;   // no authentication at all; logs a warning on every connect
  std::string server_name; // SNI and the name checked with ca_file; default: host

  // --- timing
  // The TCP connect (shared among the host's addresses) and, again, the TLS handshake.
  Duration connect_timeout = std::chrono::seconds(10);
  // IOT/1.1 has no login reply: a server that refuses a login closes the connection at
  // once. The login counts as accepted when the connection is still open this long after
  // the login frame (or a push arrives earlier). Other frames wait until then. It must be
  // longer than a round trip: raise it on links slower than a second (2G, NB-IoT).
  Duration login_grace = std::chrono::seconds(2);
  Duration time_tolerance = std::chrono::seconds(3);  // the server's protocol.time_tolerance
  // The server closes a link silent for 90 s. With nothing else sent for this long, the
  // client sends keepalive_payload (the backend sees it as an ordinary record). It is
  // also the login frame when nothing else is waiting. 0: no keepalive.
  Duration keepalive = std::chrono::seconds(60);
  std::string keepalive_payload = "keepalive";
  // Renew the connection before the server's timeouts.max_connection_age (24 h by
  // default); each connection picks a moment in the last tenth before this, so that a
  // fleet does not renew at once. 0: never.
  Duration max_connection_age = std::chrono::hours(23);

  // --- reconnecting
  bool reconnect = true;  // false: a lost connection is a fatal server_gone
  Duration backoff_initial = std::chrono::seconds(1);
  Duration backoff_max = std::chrono::seconds(60);
  // Consecutive failed attempts (unreachable, TLS failure) before server_gone turns fatal.
  // 0: never give up, which is what a device in the field wants.
  unsigned max_attempts = 0;
  // Consecutive refused logins before auth_refused turns fatal. 0: never. The default
  // outlasts the 90 s a server may take to notice that the device's previous connection
  // is dead (until then it refuses the device's new login as a duplicate).
  unsigned max_auth_failures = 10;

  std::size_t queue_limit = 1000;  // frames waiting while not connected
  // At most this many frames per second on average, in bursts of at most a third of it,
  // so that a backlog sent after a reconnect stays under the server's flood limit
  // (protocol.flood_frames per flood_window: 333 per 3 s by default; 90/s with bursts of
  // 30 is at most 300 in any 3 s). Raise both together. 0: no limit.
  unsigned max_rate = 90;

  // --- hooks
  // Where the client reports what it does. Default: warnings and errors to stderr.
  std::function<void(LogLevel, std::string_view)> log;
  // The wall clock for TIMEs; replace it only in tests.
  std::function<std::chrono::system_clock::time_point()> clock;
};

struct Stats {
  std::uint64_t frames_sent = 0;       // whole frames handed to TLS
  std::uint64_t pushes_received = 0;   // pushes that passed every check
  std::uint64_t pushes_refused = 0;    // clock_skew, replayed_push, bad_server_frame
  std::uint64_t connects = 0;          // logins accepted
  std::uint64_t failed_attempts = 0;   // attempts that ended before a login was accepted
};

class Client {
 public:
  // Checks the options and loads the CA, certificate and pins. Does not connect.
  static std::unique_ptr<Client> create(Options options, Error* error);

  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Connects, handshakes, authenticates the server and logs in, waiting up to
  // 2 x connect_timeout + login_grace. Not needed before send()/poll(), which connect on
  // their own (with backoff); useful to see the first error at once.
  std::optional<Error> connect();

  // Queues one frame. Fails only for bad_payload, queue_full or a fatal error; a missing
  // connection is not an error (the frame waits for the next login).
  std::optional<Error> send(std::string_view payload);

  // Runs I/O (connects, logs in, writes, reads, keeps alive, renews) until a push arrives,
  // something goes wrong, or `timeout` passes. A connection attempt started inside may
  // take up to 2 x connect_timeout.
  Event poll(Duration timeout);

  // Like poll() for the whole `duration`, handing pushes to on_push and non-fatal errors
  // to on_error (when set; otherwise to the log). Returns early only with a fatal error.
  std::optional<Error> run_for(Duration duration);
  std::function<void(const Push&)> on_push;
  std::function<void(const Error&)> on_error;

  // When connected, waits up to `timeout` for the queue to be written; then closes the
  // connection (close_notify, and the server's close awaited within the timeout). Frames
  // still queued are dropped (queued() tells how many). Later calls return `closed`.
  void close(Duration timeout = std::chrono::seconds(2));

  // For a caller with its own event loop (poll, select, epoll): the socket to watch for
  // input (-1 while not connected), and how long that loop may sleep before it calls
  // poll(Duration::zero()) again, which does the due work without waiting.
  int fd() const noexcept;
  Duration wait_hint() const noexcept;

  bool online() const noexcept;        // logged in and past login_grace
  std::size_t queued() const noexcept; // frames not yet written
  Stats stats() const noexcept;

  // The SHA-256 SPKI pin of the connected server's certificate ("sha256/BASE64"), or ""
  // when not connected: what to put in Options::pins.
  std::string server_pin() const;

  class Impl;

 private:
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace iotsocket::client
