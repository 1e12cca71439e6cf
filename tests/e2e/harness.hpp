// End-to-end test harness: runs the built binaries (iotsocketd, iotsocketctl) in a private
// directory with a real certificate, registry, FIFOs and spool, and talks to them the way
// devices and backends do (TLS on 127.0.0.1, the FIFOs).
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <openssl/ssl.h>

#include "common/fd.hpp"
#include "common/tls.hpp"
#include "protocol/decoder.hpp"
#include "protocol/device_id.hpp"
#include "protocol/line_reader.hpp"
#include "protocol/record.hpp"
#include "protocol/time.hpp"

namespace iotsocket::e2e {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// A self-signed ECDSA P-256 certificate (CN and SAN localhost, SAN IP 127.0.0.1) valid for
// `days`, and its key (mode 0600), made by the openssl command. Throws when that fails.
void make_certificate(const std::string& cert_file, const std::string& key_file, int days = 2);

// The SHA-256 pin of a PEM certificate's public key ("sha256/BASE64"), computed by the
// openssl command line, independently of our code.
std::string openssl_pin(const std::string& cert_file);

// Path of a built binary: build/bin/<name>.
std::string binary(std::string_view name);

// Runs a command (argv[0] is a path) with `input` on its stdin; returns its exit code
// (128+signal if killed), stdout and stderr.
struct RunResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};
RunResult run_command(const std::vector<std::string>& argv, const std::string& input = "");

struct ServerOptions {
  unsigned workers = 2;
  bool tls = true;
  std::string extra_yaml;  // appended to the generated config (top-level keys)
  std::string timeouts = "{idle: 90s, handshake: 10s, first_frame: 10s, max_connection_age: 24h}";
  std::string limits = "{max_connections: 10000, per_ip: 5000}";
  std::string listen = "[{address: 127.0.0.1, port: 0}]";
  std::string devices = "{sqlite: devices.db}";
  std::string spool = "{dir: spool}";
  std::string log = "{level: debug}";
  bool events = false;  // fifo.events: events.fifo (made by the test or by the server)
  std::vector<std::string> wrapper;  // runs iotsocketd through this, e.g. {"/usr/bin/prlimit", ...}
};

// A server instance in its own temporary directory. The directory (and with it the
// registry and spool) survives stop()/start(), so a restart can be tested.
class TestServer {
 public:
  explicit TestServer(ServerOptions options = {});
  ~TestServer();
  TestServer(const TestServer&) = delete;
  TestServer& operator=(const TestServer&) = delete;

  void start();  // spawns iotsocketd and waits for "listening on"
  int stop(int signal_number = SIGTERM);  // returns the exit code (128+sig if killed)
  // The next start() listens on this run's port again, as a restarted server does for
  // the devices that reconnect to it.
  void keep_port();
  // Writes the config file again from changed options (a reload test edits it this way).
  void rewrite_config(const ServerOptions& options);
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  std::uint16_t port() const { return port_; }

  // Registers devices through `iotsocketctl devices import --fast-hash`.
  void add_devices(std::uint64_t first_id, std::size_t count, const std::string& key);
  RunResult ctl(const std::vector<std::string>& args) const;

  // The server's stderr so far, and waiting for a line containing `needle`.
  std::string log() const;
  bool wait_for_log(std::string_view needle, std::chrono::milliseconds timeout = 10s) const;
  std::size_t count_in_log(std::string_view needle) const;
  // The port number right after the first `prefix` in the log ("listening on 127.0.0.1:");
  // 0 when the log has none yet.
  std::uint16_t port_in_log(std::string_view prefix) const;
  // Waits until `needle` is in the log at least `count` times.
  bool wait_for_log_count(std::string_view needle, std::size_t count,
                          std::chrono::milliseconds timeout = 10s) const;

  const std::string& dir() const { return dir_; }
  std::string inbound_fifo() const { return dir_ + "/inbound.fifo"; }
  std::string push_fifo() const { return dir_ + "/push.fifo"; }
  std::string events_fifo() const { return dir_ + "/events.fifo"; }
  // Writes `text` (whole `ID payload` lines) into the push FIFO, as a backend does.
  void push_lines(std::string_view text) const;
  // The pid of worker `index` as the log reports it ("worker N started, pid P"), latest.
  pid_t worker_pid(unsigned index) const;
  std::string spool_dir() const { return dir_ + "/spool"; }
  std::string config_path() const { return dir_ + "/iotsocket.yaml"; }

 private:
  void write_config();

  ServerOptions options_;
  std::string dir_;
  std::string log_path_;
  // One per server object: a name reused by the next test would look like a run that
  // did not stop cleanly (and make its logins wait out the time tolerance).
  std::string shm_name_;
  pid_t pid_ = -1;
  std::uint16_t port_ = 0;
  std::size_t log_offset_ = 0;  // log of the current run starts here
};

// A push frame as a device received it (checked by the protocol decoder).
struct PushFrame {
  protocol::DeviceId device;
  protocol::Time time;
  std::string payload;
};

// A device: one TLS (or plain) connection to the server, blocking with timeouts.
class Device {
 public:
  Device(std::uint16_t port, bool tls = true, const std::string& source_ip = "127.0.0.1");
  // Closes gracefully (close_notify, then waits briefly for the server's close), so that a
  // server still reading our last frames is not hit by a reset that discards them.
  ~Device();
  Device(Device&&) = default;
  bool connected() const { return fd_.valid() && (!use_tls_ || ssl_); }

  // Sends raw bytes; false when the server has closed the connection.
  bool send_raw(std::string_view bytes);
  // A well-formed frame with TIME = now (or `time`).
  bool send_frame(protocol::DeviceId id, std::string_view key, std::string_view payload,
                  std::optional<protocol::Time> time = std::nullopt);
  // True when the server closes the connection within `timeout`.
  bool wait_closed(std::chrono::milliseconds timeout = 5s);

  // Reads until `count` push frames arrived or `timeout` passed; returns what arrived
  // (more that came in the same read wait for the next call). A frame the decoder refuses
  // ends the reading and is counted in bad_frames().
  std::vector<PushFrame> read_pushes(std::size_t count, std::chrono::milliseconds timeout = 5s);
  // Everything the server sent so far, as raw bytes (to compare with the legacy format).
  const std::string& raw_received() const { return raw_; }
  std::size_t bad_frames() const { return bad_frames_; }
  int fd() const { return fd_.get(); }

 private:
  // One read of what is there (waits at most `wait`); false when the connection closed.
  bool read_once(std::chrono::milliseconds wait);

  bool use_tls_;
  Fd fd_;
  SslCtx ctx_;
  Ssl ssl_;
  protocol::Decoder decoder_{protocol::Direction::from_server};
  std::vector<PushFrame> pushes_;  // decoded, not yet returned
  std::string raw_;
  std::size_t bad_frames_ = 0;
};

// The backend side of the inbound FIFO: reads records with a timeout.
class InboundReader {
 public:
  explicit InboundReader(const std::string& fifo_path);
  // Reads until `count` records arrived or `timeout` passed; returns at most `count`
  // (more that came in the same read wait for the next call).
  std::vector<protocol::Record> read(std::size_t count, std::chrono::milliseconds timeout = 10s);
  // Raw lines that failed to parse (should stay empty).
  const std::vector<std::string>& bad_lines() const { return bad_lines_; }

 private:
  Fd fd_;
  protocol::LineReader lines_;
  std::vector<protocol::Record> early_;  // arrived beyond what the last read() asked for
  std::vector<std::string> bad_lines_;
};

// Unique, strictly increasing TIMEs near now for frames a test sends.
protocol::Time fresh_time();

// "ID payload\n": a push record as the backend writes it into the push FIFO.
std::string push_record(std::uint64_t id, std::string_view payload);

// A device that has logged in: its first frame ("hello-server", at `time` or now) was
// accepted, i.e. its record came out of the inbound FIFO through `reader`.
std::unique_ptr<Device> logged_in(TestServer& server, InboundReader& reader, std::uint64_t id,
                                  std::string_view key,
                                  std::optional<protocol::Time> time = std::nullopt);

// --- the metrics endpoint (metrics.listen), as Prometheus scrapes it ---

// One HTTP response: its status, head and body.
struct Scrape {
  int status = 0;
  std::string head;
  std::string body;
};
// A TCP connection to 127.0.0.1:port; invalid when connect() failed.
Fd connect_local(std::uint16_t port);
// One HTTP request on a fresh connection; reads until the server closes (bounded: 5 s).
Scrape http_get(std::uint16_t port, const std::string& path);
// "name{labels}" -> value, as an independent parser (python3's prometheus_client) read the
// text; a text it refuses fails the test.
using Samples = std::map<std::string, double>;
Samples parse_with_prometheus_client(const std::string& text);
// The endpoint's port as the server's log says it ("metrics on 127.0.0.1:PORT").
std::uint16_t metrics_port(const TestServer& server);

}  // namespace iotsocket::e2e
