#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <thread>

#include "common/log.hpp"
#include "config/config.hpp"
#include "config/schema.hpp"
#include "temp_dir.hpp"

namespace iotsocket::config {
namespace {

using namespace std::chrono_literals;
using test::TempDir;

std::string all_errors(const LoadResult& result) {
  std::string out;
  if (result) return out;
  for (const auto& e : result.error()) out += e.to_string() + "\n";
  return out;
}

// Every field of a Config except `path`, which names the file.
void expect_same_settings(Config actual, const Config& expected) {
  actual.path = expected.path;
  EXPECT_TRUE(actual == expected);
}

TEST(LoadConfig, AlmostEmptyFileGivesTheDefaults) {
  TempDir dir;
  const std::string path = dir.write("iotsocket.yaml", "log: {level: info}\n");
  const auto config = load_file(path);
  ASSERT_TRUE(config) << all_errors(config);
  EXPECT_EQ(config->path, path);
  expect_same_settings(*config, Config{});
  // The defaults themselves, spelled out once, as docs/ARCHITECTURE.md and README.md state them.
  ASSERT_EQ(config->listen.size(), 1u);
  EXPECT_EQ(config->listen[0].address, "0.0.0.0");
  EXPECT_EQ(config->listen[0].port, 9000);
  EXPECT_TRUE(config->tls.enabled);
  EXPECT_EQ(config->tls.cert, "/etc/iotsocket/cert.pem");
  EXPECT_EQ(config->workers, 0u);
  EXPECT_EQ(config->devices.duplicate, DuplicatePolicy::reject);
  EXPECT_EQ(config->spool.max_size, 1ULL << 30);
  EXPECT_EQ(config->push.offline_max, 100u);
  EXPECT_EQ(config->push.offline_max_age, std::chrono::hours(24));
  EXPECT_EQ(config->push.write_queue, 256u * 1024u);
  // The offline queue lives beside the registry unless the file says otherwise.
  EXPECT_EQ(offline_db_path(*config), "/var/lib/iotsocket/offline-push.db");
  EXPECT_EQ(config->timeouts.idle, 90s);
  EXPECT_EQ(config->timeouts.max_connection_age, 24h);
  EXPECT_EQ(config->protocol.time_tolerance, 3s);
  EXPECT_EQ(config->protocol.flood_frames, 333u);
  EXPECT_EQ(config->limits.per_ip, 1024u);
  EXPECT_EQ(config->log.level, "info");
}

TEST(LoadConfig, SectionWithEveryKeyCommentedOutKeepsItsDefaults) {
  const auto config = load_string("tls:\n  # cert: x.pem\nworkers: 2\n", "c.yaml", "/srv");
  ASSERT_TRUE(config) << all_errors(config);
  EXPECT_EQ(config->tls, Config{}.tls);
  EXPECT_EQ(config->workers, 2u);
}

TEST(LoadConfig, TheExampleOfArchitectureMd) {
  // Copied from docs/ARCHITECTURE.md, "Public interfaces".
  const std::string text = R"(listen: [{address: 0.0.0.0, port: 9000}]
tls: {enabled: true, cert: /etc/iotsocket/cert.pem, key: /etc/iotsocket/key.pem}
workers: auto                 # or a number
devices: {sqlite: /var/lib/iotsocket/devices.db, duplicate: reject}   # reject | replace
fifo: {push: /run/iotsocket/push.fifo, inbound: /run/iotsocket/inbound.fifo}
spool: {dir: /var/lib/iotsocket/spool}
runtime: {shm_name: iotsocket, pid_file: /run/iotsocket/iotsocketd.pid}
timeouts: {idle: 90s, handshake: 10s, max_connection_age: 24h}
protocol: {time_tolerance: 3s}
log: {level: info}
)";
  TempDir dir;
  const auto config = load_file(dir.write("iotsocket.yaml", text));
  ASSERT_TRUE(config) << all_errors(config);
  ASSERT_EQ(config->listen.size(), 1u);
  EXPECT_EQ(config->listen[0], (ListenAddress{"0.0.0.0", 9000}));
  EXPECT_EQ(config->tls, (Tls{true, "/etc/iotsocket/cert.pem", "/etc/iotsocket/key.pem"}));
  EXPECT_EQ(config->workers, 0u);
  EXPECT_EQ(config->devices.sqlite, "/var/lib/iotsocket/devices.db");
  EXPECT_EQ(config->devices.duplicate, DuplicatePolicy::reject);
  EXPECT_EQ(config->fifo.push, "/run/iotsocket/push.fifo");
  EXPECT_EQ(config->fifo.inbound, "/run/iotsocket/inbound.fifo");
  EXPECT_EQ(config->spool.dir, "/var/lib/iotsocket/spool");
  EXPECT_EQ(config->runtime.shm_name, "iotsocket");
  EXPECT_EQ(config->runtime.pid_file, "/run/iotsocket/iotsocketd.pid");
  EXPECT_EQ(config->timeouts.idle, 90s);
  EXPECT_EQ(config->timeouts.handshake, 10s);
  EXPECT_EQ(config->timeouts.max_connection_age, 24h);
  EXPECT_EQ(config->protocol.time_tolerance, 3s);
  EXPECT_EQ(config->log.level, "info");
  // It states the defaults: the same settings as no file at all.
  expect_same_settings(*config, Config{});
}

TEST(LoadConfig, EveryKeySetToANonDefaultValue) {
  const std::string text = R"(
listen:
  - address: 127.0.0.1
    port: 9001
  - {address: "::1", port: 0}
tls:
  enabled: false
  cert: ""
  key: ""
workers: 3
devices: {sqlite: /data/devices.db, duplicate: replace}
fifo: {push: /data/push, inbound: /data/inbound}
spool: {dir: /data/spool, max_size: 10GB, memory: 512KiB}
runtime: {shm_name: iot-test, pid_file: /data/pid}
timeouts: {idle: 500ms, handshake: 2s, first_frame: 1m, max_connection_age: 48h}
protocol: {time_tolerance: 60s, flood_frames: 1, flood_window: 250ms}
limits: {max_connections: 10, per_ip: 10, max_devices: 7}
push: {offline_db: queue.db, offline_max: 0, offline_max_age: 5m, write_queue: 1MiB}
log: {level: trace}
metrics: {listen: "[::1]:9100"}
)";
  const auto config = load_string(text, "all.yaml", "/srv");
  ASSERT_TRUE(config) << all_errors(config);
  Config expected;
  expected.path = "all.yaml";
  expected.listen = {{"127.0.0.1", 9001}, {"::1", 0}};
  expected.tls = {false, "", ""};
  expected.workers = 3;
  expected.devices = {"/data/devices.db", DuplicatePolicy::replace};
  expected.fifo = {"/data/push", "/data/inbound"};
  expected.spool = {"/data/spool", 10'000'000'000ULL, 512ULL * 1024};
  expected.runtime = {"iot-test", "/data/pid"};
  expected.timeouts = {500ms, 2s, 1min, 48h};
  expected.protocol = {60s, 1, 250ms};
  expected.limits = {10, 10, 7};
  expected.push = {"/srv/queue.db", 0, 5min, 1024 * 1024};
  expected.log = {"trace"};
  expected.metrics = {"[::1]:9100"};
  EXPECT_TRUE(*config == expected);
  EXPECT_EQ(offline_db_path(*config), "/srv/queue.db");
  EXPECT_EQ(effective_workers(*config), 3u);
}

TEST(LoadConfig, DurationsAndSizesInEveryUnit) {
  const auto config = load_string(
      "timeouts: {idle: 500ms, handshake: 90s, first_frame: 5m, max_connection_age: 24h}\n"
      "spool: {max_size: 1GiB, memory: 64MiB}\n",
      "u.yaml");
  ASSERT_TRUE(config) << all_errors(config);
  EXPECT_EQ(config->timeouts.idle, 500ms);
  EXPECT_EQ(config->timeouts.handshake, 90s);
  EXPECT_EQ(config->timeouts.first_frame, 5min);
  EXPECT_EQ(config->timeouts.max_connection_age, 24h);
  EXPECT_EQ(config->spool.max_size, 1ULL << 30);
  EXPECT_EQ(config->spool.memory, 64ULL << 20);
  // Every unit of each kind, through the file (units_test.cpp has the edge cases).
  const std::pair<const char*, std::uint64_t> sizes[] = {
      {"512", 512},           {"512B", 512},
      {"4KiB", 4096},         {"64MiB", 64ULL << 20},
      {"1GiB", 1ULL << 30},   {"1TiB", 1ULL << 40},
      {"4KB", 4000},          {"64MB", 64'000'000},
      {"1GB", 1'000'000'000}, {"1TB", 1'000'000'000'000}};
  for (const auto& [text, bytes] : sizes) {
    const auto sized = load_string(std::string("spool: {memory: ") + text + "}\n", "s.yaml");
    ASSERT_TRUE(sized) << text << "\n" << all_errors(sized);
    EXPECT_EQ(sized->spool.memory, bytes) << text;
  }
}

TEST(LoadConfig, RelativePathsAreTakenFromTheConfigFilesDirectory) {
  TempDir dir;
  const std::string path = dir.write("etc/iotsocket.yaml", R"(
tls: {cert: cert.pem, key: ../secret/key.pem}
devices: {sqlite: db/devices.db}
fifo: {push: ./push.fifo, inbound: /abs/inbound.fifo}
spool: {dir: spool}
runtime: {pid_file: run/iotsocketd.pid}
)");
  const std::filesystem::path etc = dir.path() / "etc";
  // Also through a relative name of the file: the results are absolute all the same.
  const std::string relative =
      std::filesystem::relative(path, std::filesystem::current_path()).string();
  ASSERT_FALSE(std::filesystem::path(relative).is_absolute());
  for (const std::string& name : {path, relative}) {
    const auto config = load_file(name);
    ASSERT_TRUE(config) << all_errors(config);
    EXPECT_EQ(config->path, name);
    EXPECT_EQ(config->tls.cert, (etc / "cert.pem").string());
    EXPECT_EQ(config->tls.key, (dir.path() / "secret/key.pem").string());
    EXPECT_EQ(config->devices.sqlite, (etc / "db/devices.db").string());
    EXPECT_EQ(config->fifo.push, (etc / "push.fifo").string());
    EXPECT_EQ(config->fifo.inbound, "/abs/inbound.fifo");
    EXPECT_EQ(config->spool.dir, (etc / "spool").string());
    EXPECT_EQ(config->runtime.pid_file, (etc / "run/iotsocketd.pid").string());
  }
}

TEST(LoadConfig, LoadStringResolvesAgainstBaseDir) {
  const auto config = load_string("tls: {cert: cert.pem, key: /k.pem}\nruntime: {shm_name: x}\n",
                                  "t.yaml", "/srv/iot");
  ASSERT_TRUE(config) << all_errors(config);
  EXPECT_EQ(config->tls.cert, "/srv/iot/cert.pem");
  EXPECT_EQ(config->tls.key, "/k.pem");
  EXPECT_EQ(config->runtime.shm_name, "x");  // a name, not a path: never resolved
}

TEST(LoadConfig, MissingFile) {
  TempDir dir;
  const std::string path = (dir.path() / "nope.yaml").string();
  const auto config = load_file(path);
  ASSERT_FALSE(config);
  ASSERT_EQ(config.error().size(), 1u);
  const ConfigError& e = config.error()[0];
  EXPECT_EQ(e.file, path);
  EXPECT_EQ(e.line, 0);
  EXPECT_EQ(e.key, "");
  EXPECT_EQ(e.to_string(), path + ": cannot read the config file: No such file or directory");
}

// A value quoted in a message cannot break the line or send a terminal an escape.
TEST(LoadConfig, AnErrorIsOneLineWhateverTheValueHolds) {
  const auto config = load_string("workers: \"2\\n2025-01-01 fake line\\e[2J\"\n", "x.yaml");
  ASSERT_FALSE(config);
  ASSERT_EQ(config.error().size(), 1u);
  const std::string line = config.error()[0].to_string();
  EXPECT_EQ(line.find_first_of("\n\r\x1b"), std::string::npos) << line;
  EXPECT_NE(line.find("got '2\\x0a2025-01-01 fake line\\x1b[2J'"), std::string::npos) << line;
}

TEST(LoadConfig, DirectoryInsteadOfAFile) {
  TempDir dir;
  const auto config = load_file(dir.path().string());
  ASSERT_FALSE(config);
  ASSERT_EQ(config.error().size(), 1u);
  EXPECT_EQ(config.error()[0].line, 0);
  EXPECT_NE(config.error()[0].message.find("is a directory"), std::string::npos);
}

TEST(LoadConfig, PathThroughAFileIsAnErrorWithTheSystemsReason) {
  // (A permission test would pass vacuously as root, which is how CI runs.)
  TempDir dir;
  const std::string file = dir.write("plain.yaml", "workers: 2\n");
  const auto config = load_file(file + "/iotsocket.yaml");
  ASSERT_FALSE(config);
  ASSERT_EQ(config.error().size(), 1u);
  EXPECT_EQ(config.error()[0].line, 0);
  EXPECT_NE(config.error()[0].message.find("Not a directory"), std::string::npos)
      << config.error()[0].to_string();
}

TEST(LoadConfig, EmptyFileIsAnError) {
  TempDir dir;
  for (const char* text : {"", "\n\n", "# only a comment\n", "---\n"}) {
    const std::string path = dir.write("empty.yaml", text);
    const auto config = load_file(path);
    ASSERT_FALSE(config) << text;
    ASSERT_EQ(config.error().size(), 1u) << text;
    EXPECT_EQ(config.error()[0].line, 0);
    EXPECT_EQ(config.error()[0].to_string().rfind(path + ": empty config", 0), 0u)
        << config.error()[0].to_string();
  }
}

TEST(LoadConfig, YamlSyntaxErrorHasItsPlace) {
  TempDir dir;
  const std::string path =
      dir.write("broken.yaml", "workers: 2\nlisten: [{address: 0.0.0.0, port: 9000}\nlog: {}\n");
  const auto config = load_file(path);
  ASSERT_FALSE(config);
  ASSERT_EQ(config.error().size(), 1u);
  const ConfigError& e = config.error()[0];
  EXPECT_EQ(e.file, path);
  EXPECT_EQ(e.line, 3);
  EXPECT_EQ(e.column, 1);  // where yaml-cpp noticed: the next key, still inside the [
  EXPECT_EQ(e.key, "");
  EXPECT_EQ(e.message, "invalid YAML: end of sequence flow not found");
  EXPECT_EQ(e.to_string(), path + ":3:1: invalid YAML: end of sequence flow not found");
}

TEST(LoadConfig, EveryProblemOfAFileIsReportedInFileOrder) {
  TempDir dir;
  const std::string path = dir.write("many.yaml", R"(workers: many
listen:
  - {address: 10.0.0.300, port: 70000}
timeouts:
  idle: 90
  bogus: 1s
limits: {max_connections: 10, per_ip: 20}
log: {level: loud}
)");
  const auto config = load_file(path);
  ASSERT_FALSE(config);
  const std::string p = path + ":";
  EXPECT_EQ(all_errors(config),
            p + "1:10: workers: expected auto or an integer from 1 to 1024, got 'many'\n" + p +
                "3:15: listen[0].address: expected an IPv4 or IPv6 address literal such as "
                "0.0.0.0, 127.0.0.1 or \"::\" (quoted: a plain :: is not valid YAML), got "
                "'10.0.0.300'; host names are not accepted\n" +
                p + "3:33: listen[0].port: expected an integer from 0 to 65535, got '70000'\n" + p +
                "5:9: timeouts.idle: duration without a unit '90'; expected a positive integer "
                "with a unit: ms, s, m or h (e.g. 500ms, 90s, 5m, 24h)\n" +
                p +
                "6:3: timeouts.bogus: unknown key 'bogus'; allowed here: idle, handshake, "
                "first_frame or max_connection_age\n" +
                p + "7:39: limits.per_ip: per_ip (20) is above limits.max_connections (10)\n" + p +
                "8:14: log.level: expected one of trace, debug, info, warn, error, critical or "
                "off, got 'loud'\n");
}

TEST(LoadConfig, LogLevelsAreTheOnesOfCommonLog) {
  for (const std::string_view level : kLogLevels) {
    EXPECT_TRUE(log::parse_level(level).has_value()) << level;
    const auto config = load_string("log: {level: " + std::string(level) + "}\n", "l.yaml");
    ASSERT_TRUE(config) << all_errors(config);
    EXPECT_EQ(config->log.level, level);
  }
  EXPECT_FALSE(log::parse_level("warning").has_value());
  EXPECT_FALSE(load_string("log: {level: warning}\n", "l.yaml"));
}

TEST(LoadConfig, ConfigErrorToString) {
  EXPECT_EQ((ConfigError{"a.yaml", 3, 5, "timeouts.idle", "zero"}).to_string(),
            "a.yaml:3:5: timeouts.idle: zero");
  EXPECT_EQ((ConfigError{"a.yaml", 1, 1, "", "invalid YAML: x"}).to_string(),
            "a.yaml:1:1: invalid YAML: x");
  EXPECT_EQ((ConfigError{"a.yaml", 0, 0, "", "empty config"}).to_string(), "a.yaml: empty config");
}

TEST(EffectiveWorkers, AutoIsOnePerCoreAndANumberIsKept) {
  Config config;
  config.workers = 0;
  const unsigned cores = std::thread::hardware_concurrency();
  EXPECT_EQ(effective_workers(config), cores == 0 ? 1u : cores);
  EXPECT_GE(effective_workers(config), 1u);
  config.workers = 7;
  EXPECT_EQ(effective_workers(config), 7u);
}

}  // namespace
}  // namespace iotsocket::config
