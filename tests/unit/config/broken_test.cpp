// Broken configs, one problem each: the exact place, the dotted key and what the message
// says. Each file is a real file, loaded with load_file.
#include <gtest/gtest.h>

#include <string>

#include "config/config.hpp"
#include "temp_dir.hpp"

namespace iotsocket::config {
namespace {

struct Broken {
  const char* name;  // test name
  const char* yaml;
  int line;
  int column;
  const char* key;
  const char* fragment;  // part of the message
};

void PrintTo(const Broken& b, std::ostream* os) { *os << b.name; }

class BrokenConfig : public ::testing::TestWithParam<Broken> {};

TEST_P(BrokenConfig, IsRefusedWithPlaceKeyAndReason) {
  const Broken& b = GetParam();
  test::TempDir dir;
  const std::string path = dir.write("broken.yaml", b.yaml);
  const auto result = load_file(path);
  ASSERT_FALSE(result) << b.yaml;
  ASSERT_EQ(result.error().size(), 1u) << [&] {
    std::string all;
    for (const auto& e : result.error()) all += e.to_string() + "\n";
    return all;
  }();
  const ConfigError& e = result.error()[0];
  EXPECT_EQ(e.file, path);
  EXPECT_EQ(e.line, b.line) << e.to_string();
  EXPECT_EQ(e.column, b.column) << e.to_string();
  EXPECT_EQ(e.key, b.key) << e.to_string();
  EXPECT_NE(e.message.find(b.fragment), std::string::npos) << e.to_string();
}

const Broken kBroken[] = {
    {"ShutdownDrainTooLong", "shutdown: {drain: 1h}\n", 1, 19, "shutdown.drain",
     "expected at most 10m (systemd's stop timeout must cover it), got '1h'"},
    {"ShutdownDrainBareNumber", "shutdown:\n  drain: 30\n", 2, 10, "shutdown.drain", "30"},
    {"LogFileNotAString", "log: {file: [a, b]}\n", 1, 13, "log.file", "a path"},
    {"MetricsListenWithoutPort", "metrics: {listen: 127.0.0.1}\n", 1, 19, "metrics.listen",
     "expected ADDRESS:PORT with an IP literal, e.g. 127.0.0.1:9100 or [::1]:9100 (empty: off), "
     "got '127.0.0.1'"},
    {"MetricsListenHostName", "metrics:\n  listen: localhost:9100\n", 2, 11, "metrics.listen",
     "got 'localhost:9100'"},
    {"MetricsListenPortTooLarge", "metrics:\n  listen: \"[::1]:65536\"\n", 2, 11,
     "metrics.listen", "got '[::1]:65536'"},
    {"PushWriteQueueBelowOneFrame", "push: {write_queue: 16KiB}\n", 1, 21, "push.write_queue",
     "expected at least 64KiB (one push frame of the largest size), got '16KiB'"},
    {"PushOfflineMaxTooLarge", "push:\n  offline_max: 2000000\n", 2, 16, "push.offline_max",
     "expected an integer from 0 to 1000000"},
    {"PushOfflineMaxAgeBareNumber", "push:\n  offline_max_age: 3600\n", 2, 20,
     "push.offline_max_age", "3600"},
    {"PushUnknownKey", "push:\n  offline_ttl: 1h\n", 2, 3, "push.offline_ttl",
     "allowed here: offline_db, offline_max, offline_max_age or write_queue"},
    {"UnknownTopLevelKey", "listne: []\n", 1, 1, "listne",
     "unknown key 'listne'; allowed here: listen, tls, workers, devices, fifo, spool, runtime, "
     "timeouts, protocol, limits, push, shutdown, log or metrics"},
    {"UnknownNestedKey", "tls:\n  enabled: true\n  certificate: a.pem\n", 3, 3, "tls.certificate",
     "unknown key 'certificate'; allowed here: enabled, cert or key"},
    {"UnknownKeyInListItem", "listen:\n  - {address: 0.0.0.0, port: 1, backlog: 5}\n", 2, 33,
     "listen[0].backlog", "allowed here: address or port"},
    {"WorkersNotANumber", "workers: many\n", 1, 10, "workers",
     "expected auto or an integer from 1 to 1024, got 'many'"},
    {"WorkersZero", "workers: 0\n", 1, 10, "workers", "expected auto or an integer from 1"},
    {"WorkersAList", "workers: [1]\n", 1, 10, "workers", "got a list"},
    {"PortTooLarge", "listen:\n  - {address: 0.0.0.0, port: 70000}\n", 2, 30, "listen[0].port",
     "expected an integer from 0 to 65535, got '70000'"},
    {"PortNegative", "listen:\n  - address: 0.0.0.0\n    port: -1\n", 3, 11, "listen[0].port",
     "expected an integer from 0 to 65535, got '-1'"},
    {"PortQuoted", "listen:\n  - address: 0.0.0.0\n    port: \"9000\"\n", 3, 11, "listen[0].port",
     "got a quoted string"},
    {"PortMissing", "listen:\n  - address: 127.0.0.1\n", 2, 5, "listen[0].port", "missing"},
    {"ListenEmpty", "listen: []\n", 1, 9, "listen", "got an empty list"},
    {"ListenNotAList", "listen: {address: 0.0.0.0, port: 9000}\n", 1, 9, "listen",
     "expected a list of {address, port}"},
    {"ListenHostName", "listen:\n  - address: localhost\n    port: 9000\n", 2, 14,
     "listen[0].address", "host names are not accepted"},
    {"ListenBadIpv6", "listen: [{address: \"::g\", port: 1}]\n", 1, 20, "listen[0].address",
     "got '::g'"},
    {"ListenTwice",
     "listen:\n  - {address: 0.0.0.0, port: 9000}\n  - {address: 0.0.0.0, port: 9000}\n", 3, 5,
     "listen[1]", "the same address and port as listen[0]"},
    {"LogLevelUnknown", "log: {level: verbose}\n", 1, 14, "log.level",
     "expected one of trace, debug, info, warn, error, critical or off, got 'verbose'"},
    {"DuplicatePolicyUnknown", "devices: {duplicate: kick}\n", 1, 22, "devices.duplicate",
     "expected one of reject or replace, got 'kick'"},
    {"DurationZero", "timeouts:\n  idle: 0s\n", 2, 9, "timeouts.idle", "zero duration '0s'"},
    {"DurationNegative", "timeouts: {handshake: -5s}\n", 1, 23, "timeouts.handshake",
     "negative duration '-5s'"},
    {"DurationWithoutUnit", "timeouts:\n  first_frame: 10\n", 2, 16, "timeouts.first_frame",
     "duration without a unit '10'; expected a positive integer with a unit: ms, s, m or h"},
    {"DurationEmpty", "timeouts:\n  idle:\n  handshake: 1s\n", 2, 3, "timeouts.idle",
     "expected a duration like 90s, got nothing"},
    {"TimeToleranceAbove60s", "protocol:\n  time_tolerance: 61s\n", 2, 19,
     "protocol.time_tolerance", "expected at most 60s"},
    {"FloodFramesZero", "protocol: {flood_frames: 0}\n", 1, 26, "protocol.flood_frames",
     "expected an integer from 1 to 4294967295, got '0'"},
    {"MaxConnectionsTooLarge", "limits: {max_connections: 4294967296}\n", 1, 27,
     "limits.max_connections", "expected an integer from 1 to 4294967295"},
    {"PerIpAboveMaxConnections", "limits:\n  max_connections: 10\n  per_ip: 20\n", 3, 11,
     "limits.per_ip", "per_ip (20) is above limits.max_connections (10)"},
    {"PerIpAboveDefaultMaxConnections", "limits:\n  per_ip: 100001\n", 2, 11, "limits.per_ip",
     "is above limits.max_connections (100000)"},
    {"TlsEnabledWithoutCert", "tls: {enabled: true, cert: \"\"}\n", 1, 28, "tls.cert",
     "TLS is enabled, so a certificate file is needed"},
    {"TlsKeyEmptyByDefaultEnabled", "tls:\n  key: ''\n", 2, 8, "tls.key",
     "TLS is enabled, so a private key file is needed"},
    {"TlsEnabledYes", "tls: {enabled: yes}\n", 1, 16, "tls.enabled",
     "expected true or false, got 'yes'"},
    {"TlsEnabledQuoted", "tls: {enabled: \"true\"}\n", 1, 16, "tls.enabled",
     "expected true or false, got a quoted string"},
    {"EmptyPath", "spool: {dir: ''}\n", 1, 14, "spool.dir", "expected a path, got ''"},
    {"PathAMapping", "devices:\n  sqlite: {file: a.db}\n", 2, 11, "devices.sqlite",
     "expected a path, got a mapping"},
    {"FifosTheSame", "fifo: {push: /run/f, inbound: /run/f}\n", 1, 31, "fifo.inbound",
     "the same file as fifo.push"},
    {"FifoEventsSameAsInbound", "fifo: {inbound: /run/f, events: /run/f}\n", 1, 33, "fifo.events",
     "the same file as fifo.push or fifo.inbound"},
    {"FifoEventsAList", "fifo:\n  events: [a.fifo]\n", 2, 11, "fifo.events",
     "expected a path, got a list"},
    {"SizeUnknownUnit", "spool: {max_size: 10XB}\n", 1, 19, "spool.max_size",
     "unknown unit in size '10XB'; expected an integer number of bytes, optionally with a unit: "
     "B, KiB, MiB, GiB, TiB"},
    {"SizeZero", "spool: {memory: 0}\n", 1, 17, "spool.memory", "expected a positive size"},
    {"ShmNameWithSlash", "runtime: {shm_name: /dev/shm/x}\n", 1, 21, "runtime.shm_name",
     "without '/'"},
    {"SectionNotAMapping", "timeouts: 90s\n", 1, 11, "timeouts",
     "expected a mapping with the keys idle, handshake, first_frame or max_connection_age, "
     "got '90s'"},
    {"RepeatedKey", "workers: 2\nlog: {level: info}\nworkers: 3\n", 3, 1, "workers",
     "repeated key (first at line 1)"},
    {"RepeatedNestedKey", "timeouts:\n  idle: 1s\n  idle: 2s\n", 3, 3, "timeouts.idle",
     "repeated key (first at line 2)"},
    {"TopLevelAList", "- listen\n- tls\n", 1, 1, "", "expected a mapping with the keys listen"},
    {"TopLevelAScalar", "workers\n", 1, 1, "", "got 'workers'"},
    {"TwoDocuments", "workers: 2\n---\nworkers: 3\n", 3, 1, "", "a second YAML document"},
    {"NonScalarKey", "? [a, b]\n: 1\n", 1, 3, "", "keys must be plain names"},
};

INSTANTIATE_TEST_SUITE_P(Config, BrokenConfig, ::testing::ValuesIn(kBroken),
                         [](const auto& test_info) { return std::string(test_info.param.name); });

}  // namespace
}  // namespace iotsocket::config
