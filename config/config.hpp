// The server's configuration: the YAML file as typed values, with every default in one
// place. load_file() validates everything; a Config that exists is a usable one.
// Schema, units and rules: config/README.md. Structs compare with == (a reload can tell
// what changed).
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "common/expected.hpp"

namespace iotsocket::config {

using Duration = std::chrono::milliseconds;

struct ListenAddress {
  std::string address;     // an IPv4 or IPv6 literal ("0.0.0.0", "::", "127.0.0.1")
  std::uint16_t port = 0;  // 0 only in tests: the kernel picks one

  friend bool operator==(const ListenAddress&, const ListenAddress&) = default;
};

struct Tls {
  bool enabled = true;  // false (plain TCP) only for tests and closed networks
  std::string cert;     // PEM certificate chain
  std::string key;      // PEM private key

  friend bool operator==(const Tls&, const Tls&) = default;
};

enum class DuplicatePolicy { reject, replace };

struct Devices {
  std::string sqlite = "/var/lib/iotsocket/devices.db";
  DuplicatePolicy duplicate = DuplicatePolicy::reject;

  friend bool operator==(const Devices&, const Devices&) = default;
};

struct Fifo {
  std::string push = "/run/iotsocket/push.fifo";
  std::string inbound = "/run/iotsocket/inbound.fifo";
  std::string events;  // lifecycle events for the backend; empty: off

  friend bool operator==(const Fifo&, const Fifo&) = default;
};

struct Spool {
  std::string dir = "/var/lib/iotsocket/spool";
  std::uint64_t max_size = 1ULL << 30;  // bytes on disk before back-pressure
  std::uint64_t memory = 4ULL << 20;    // bytes per worker held in memory

  friend bool operator==(const Spool&, const Spool&) = default;
};

struct Runtime {
  std::string shm_name = "iotsocket";
  std::string pid_file = "/run/iotsocket/iotsocketd.pid";

  friend bool operator==(const Runtime&, const Runtime&) = default;
};

struct Timeouts {
  Duration idle = std::chrono::seconds(90);
  Duration handshake = std::chrono::seconds(10);
  Duration first_frame = std::chrono::seconds(10);  // from handshake done to the login frame
  Duration max_connection_age = std::chrono::hours(24);

  friend bool operator==(const Timeouts&, const Timeouts&) = default;
};

struct Protocol {
  Duration time_tolerance = std::chrono::seconds(3);
  std::uint32_t flood_frames = 333;
  Duration flood_window = std::chrono::seconds(3);

  friend bool operator==(const Protocol&, const Protocol&) = default;
};

struct Limits {
  std::uint32_t max_connections = 100000;  // all workers together
  std::uint32_t per_ip = 1024;             // connections from one source address; 0 = no cap
  std::uint32_t max_devices = 200000;      // size of the shared device table

  friend bool operator==(const Limits&, const Limits&) = default;
};

// The push path (backend -> devices) and the offline queue.
struct Push {
  std::string offline_db;                // empty: offline-push.db beside devices.sqlite
  std::uint32_t offline_max = 100;       // queued pushes per offline device; 0 = no queue
  Duration offline_max_age = std::chrono::hours(24);
  std::uint64_t write_queue = 256 * 1024;  // unsent push bytes per connection before it closes

  friend bool operator==(const Push&, const Push&) = default;
};

struct Log {
  std::string level = "info";  // trace | debug | info | warn | error | critical | off
  std::string file;            // empty: stderr (the journal); else appended to, reopened on SIGUSR1

  friend bool operator==(const Log&, const Log&) = default;
};

// SIGTERM/SIGINT: connections are closed one by one over the drain period, so that a fleet
// does not reconnect all at once to a restarting server.
struct Shutdown {
  Duration drain = std::chrono::seconds(10);

  friend bool operator==(const Shutdown&, const Shutdown&) = default;
};

// The Prometheus endpoint (master/metrics_server.hpp). Restart-only.
struct Metrics {
  std::string listen;  // "ADDRESS:PORT" ("127.0.0.1:9100", "[::1]:9100"); empty: off

  friend bool operator==(const Metrics&, const Metrics&) = default;
};

struct Config {
  std::string path;  // the file it came from (for messages)
  std::vector<ListenAddress> listen{{"0.0.0.0", 9000}};
  Tls tls{true, "/etc/iotsocket/cert.pem", "/etc/iotsocket/key.pem"};
  unsigned workers = 0;  // 0 = auto: one per core
  Devices devices;
  Fifo fifo;
  Spool spool;
  Runtime runtime;
  Timeouts timeouts;
  Protocol protocol;
  Limits limits;
  Push push;
  Shutdown shutdown;
  Log log;
  Metrics metrics;

  friend bool operator==(const Config&, const Config&) = default;
};

// One problem found in a config file: "FILE:LINE:COLUMN: KEY: MESSAGE".
struct ConfigError {
  std::string file;
  int line = 0;         // 1-based; 0 when the problem has no place (file missing)
  int column = 0;       // 1-based
  std::string key;      // dotted path, e.g. "timeouts.idle"
  std::string message;  // what was expected
  std::string to_string() const;
};

using LoadResult = Expected<Config, std::vector<ConfigError>>;

// What a load checks beyond the file itself. `server`: the files iotsocketd opens at start
// are usable (tls.cert and tls.key readable files, spool.dir a writable directory or one
// that can be made), each problem with its key and line like any other; iotsocketctl,
// which opens none of them, and a reload, which keeps the spool, do not ask for it.
enum class FileChecks { none, server };

// Reads and validates a config file. Relative paths inside it are taken relative to the
// directory of the file, so a config under ./var/ can name "cert.pem".
LoadResult load_file(const std::string& path, FileChecks checks = FileChecks::none);

// Same, from text (tests); `name` stands for the file name in messages and `base_dir`
// resolves relative paths.
LoadResult load_string(const std::string& text, const std::string& name,
                       const std::string& base_dir = ".", FileChecks checks = FileChecks::none);

// Worker count after resolving `auto`.
unsigned effective_workers(const Config& config);

// push.offline_db, or by default offline-push.db beside devices.sqlite: the offline queue
// is state like the registry.
std::string offline_db_path(const Config& config);

}  // namespace iotsocket::config
