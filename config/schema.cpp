#include "config/schema.hpp"

#include <arpa/inet.h>

#include <array>
#include <limits>

#include "config/host_port.hpp"
#include "config/units.hpp"

namespace iotsocket::config {
namespace {

using Node = const YAML::Node&;
using At = const Where&;
using Field = Reader::Field;
constexpr std::uint32_t kMaxU32 = std::numeric_limits<std::uint32_t>::max();
constexpr std::uint64_t kMinWriteQueue = 64 * 1024;
constexpr Duration kMaxDrain = std::chrono::minutes(10);

bool is_ip_literal(const std::string& text) {
  unsigned char buffer[sizeof(in6_addr)];
  return inet_pton(AF_INET, text.c_str(), buffer) == 1 ||
         inet_pton(AF_INET6, text.c_str(), buffer) == 1;
}

void read_address(Reader& r, Node node, At at, std::string& out) {
  const auto text = r.scalar(node, at, "an IP address");
  if (!text) return;
  if (!is_ip_literal(*text)) {
    return r.error(at,
                   "expected an IPv4 or IPv6 address literal such as 0.0.0.0, 127.0.0.1 or "
                   "\"::\" (quoted: a plain :: is not valid YAML), got '" +
                       *text + "'; host names are not accepted");
  }
  out = *text;
}

// One {address, port}; both are required.
ListenAddress read_listen_item(Reader& r, Node node, At at) {
  ListenAddress item;
  bool has_address = false;
  bool has_port = false;
  const Field fields[] = {{"address",
                           [&](Node v, At w) {
                             has_address = true;
                             read_address(r, v, w, item.address);
                           }},
                          {"port", [&](Node v, At w) {
                             has_port = true;
                             r.integer<std::uint16_t>(v, w, 0, 65535, item.port);
                           }}};
  r.mapping(node, at, fields);
  if (node.IsMap() || node.IsNull()) {  // else mapping() has said what is wrong
    const auto missing = [&](std::string_view name, std::string_view what) {
      r.error(Where{at.key + "." + std::string(name), at.line, at.column},
              "missing; expected " + std::string(what));
    };
    if (!has_address) missing("address", "an IP address");
    if (!has_port) missing("port", "a port from 0 to 65535");
  }
  return item;
}

void read_listen(Reader& r, Node node, At at, std::vector<ListenAddress>& out) {
  constexpr std::string_view kForm =
      "a list of {address, port}, e.g. [{address: 0.0.0.0, port: 9000}]";
  if (!node.IsSequence()) {
    return r.error(at, "expected " + std::string(kForm) + ", got " + describe(node));
  }
  if (node.size() == 0) {
    return r.error(at, "expected " + std::string(kForm) + ", got an empty list");
  }
  std::vector<ListenAddress> addresses;
  std::size_t index = 0;
  for (const auto& item : node) {
    const Where item_at = where_of(at.key + "[" + std::to_string(index++) + "]", item.Mark());
    r.remember(item_at);
    addresses.push_back(read_listen_item(r, item, item_at));
  }
  out = std::move(addresses);
}

void read_tls(Reader& r, Node node, At at, Tls& tls) {
  // cert and key may be empty when TLS is off; check_config() decides.
  const Field fields[] = {{"enabled", [&](Node v, At w) { r.boolean(v, w, tls.enabled); }},
                          {"cert", [&](Node v, At w) { r.path(v, w, tls.cert, true); }},
                          {"key", [&](Node v, At w) { r.path(v, w, tls.key, true); }}};
  r.mapping(node, at, fields);
}

void read_workers(Reader& r, Node node, At at, unsigned& out) {
  const std::string form = "auto or an integer from 1 to " + std::to_string(kMaxWorkers);
  const auto text = r.scalar(node, at, form);
  if (!text) return;
  if (*text == "auto") {
    out = 0;
    return;
  }
  const auto count = parse_unsigned(*text);
  if (!count || *count < 1 || *count > kMaxWorkers) {
    return r.error(at, "expected " + form + ", got '" + *text + "'");
  }
  out = static_cast<unsigned>(*count);
}

void read_devices(Reader& r, Node node, At at, Devices& devices) {
  static constexpr std::array<std::pair<std::string_view, DuplicatePolicy>, 2> kPolicies{
      {{"reject", DuplicatePolicy::reject}, {"replace", DuplicatePolicy::replace}}};
  const Field fields[] = {{"sqlite", [&](Node v, At w) { r.path(v, w, devices.sqlite); }},
                          {"duplicate", [&](Node v, At w) {
                             r.choice<DuplicatePolicy>(v, w, kPolicies, devices.duplicate);
                           }}};
  r.mapping(node, at, fields);
}

void read_fifo(Reader& r, Node node, At at, Fifo& fifo) {
  const Field fields[] = {{"push", [&](Node v, At w) { r.path(v, w, fifo.push); }},
                          {"inbound", [&](Node v, At w) { r.path(v, w, fifo.inbound); }},
                          {"events", [&](Node v, At w) { r.path(v, w, fifo.events, true); }}};
  r.mapping(node, at, fields);
}

void read_spool(Reader& r, Node node, At at, Spool& spool) {
  const Field fields[] = {{"dir", [&](Node v, At w) { r.path(v, w, spool.dir); }},
                          {"max_size", [&](Node v, At w) { r.size(v, w, spool.max_size); }},
                          {"memory", [&](Node v, At w) { r.size(v, w, spool.memory); }}};
  r.mapping(node, at, fields);
}

void read_shm_name(Reader& r, Node node, At at, std::string& out) {
  std::string name;
  r.text(node, at, name);
  if (name.empty()) return;  // reported by text()
  // Boost.Interprocess makes "/<name>" of it: one path component, within NAME_MAX.
  if (name.find('/') != std::string::npos || name.size() > 200) {
    return r.error(
        at,
        "expected a shared-memory name without '/' and at most 200 characters, got '" + name + "'");
  }
  out = name;
}

void read_runtime(Reader& r, Node node, At at, Runtime& runtime) {
  const Field fields[] = {
      {"shm_name", [&](Node v, At w) { read_shm_name(r, v, w, runtime.shm_name); }},
      {"pid_file", [&](Node v, At w) { r.path(v, w, runtime.pid_file); }}};
  r.mapping(node, at, fields);
}

void read_timeouts(Reader& r, Node node, At at, Timeouts& timeouts) {
  const Field fields[] = {
      {"idle", [&](Node v, At w) { r.duration(v, w, timeouts.idle); }},
      {"handshake", [&](Node v, At w) { r.duration(v, w, timeouts.handshake); }},
      {"first_frame", [&](Node v, At w) { r.duration(v, w, timeouts.first_frame); }},
      {"max_connection_age", [&](Node v, At w) { r.duration(v, w, timeouts.max_connection_age); }}};
  r.mapping(node, at, fields);
}

// A duration no longer than `max`; `expected` names the bound and why it is there.
void read_duration_at_most(Reader& r, Node node, At at, Duration max, std::string_view expected,
                           Duration& out) {
  Duration value = out;
  r.duration(node, at, value);
  if (value > max) {
    return r.error(at, "expected " + std::string(expected) + ", got '" + node.Scalar() + "'");
  }
  out = value;
}

void read_protocol(Reader& r, Node node, At at, Protocol& protocol) {
  const Field fields[] = {
      {"time_tolerance",
       [&](Node v, At w) {
         read_duration_at_most(r, v, w, kMaxTimeTolerance,
                               "at most 60s: a wider window weakens the replay check",
                               protocol.time_tolerance);
       }},
      {"flood_frames",
       [&](Node v, At w) { r.integer<std::uint32_t>(v, w, 1, kMaxU32, protocol.flood_frames); }},
      {"flood_window", [&](Node v, At w) { r.duration(v, w, protocol.flood_window); }}};
  r.mapping(node, at, fields);
}

// One maximal push frame must fit, or a device could never receive the largest push.
void read_write_queue(Reader& r, Node node, At at, std::uint64_t& out) {
  std::uint64_t bytes = out;
  r.size(node, at, bytes);
  if (bytes < kMinWriteQueue) {
    return r.error(at, "expected at least 64KiB (one push frame of the largest size), got '" +
                           node.Scalar() + "'");
  }
  out = bytes;
}

void read_limits(Reader& r, Node node, At at, Limits& limits) {
  const Field fields[] = {
      {"max_connections",
       [&](Node v, At w) { r.integer<std::uint32_t>(v, w, 1, kMaxU32, limits.max_connections); }},
      {"per_ip", [&](Node v, At w) { r.integer<std::uint32_t>(v, w, 0, kMaxU32, limits.per_ip); }},
      {"max_devices",
       [&](Node v, At w) { r.integer<std::uint32_t>(v, w, 1, kMaxU32, limits.max_devices); }}};
  r.mapping(node, at, fields);
}

void read_push(Reader& r, Node node, At at, Push& push) {
  const Field fields[] = {
      {"offline_db", [&](Node v, At w) { r.path(v, w, push.offline_db); }},
      {"offline_max",
       [&](Node v, At w) { r.integer<std::uint32_t>(v, w, 0, 1'000'000, push.offline_max); }},
      {"offline_max_age", [&](Node v, At w) { r.duration(v, w, push.offline_max_age); }},
      {"write_queue", [&](Node v, At w) { read_write_queue(r, v, w, push.write_queue); }}};
  r.mapping(node, at, fields);
}

void read_log(Reader& r, Node node, At at, Log& log) {
  const Field fields[] = {{"level",
                           [&](Node v, At w) {
                             const auto i = r.pick(v, w, kLogLevels);
                             if (i) log.level = kLogLevels[*i];
                           }},
                          {"file", [&](Node v, At w) { r.path(v, w, log.file, true); }}};
  r.mapping(node, at, fields);
}

void read_shutdown(Reader& r, Node node, At at, Shutdown& shutdown) {
  const Field fields[] = {{"drain", [&](Node v, At w) {
                             read_duration_at_most(
                                 r, v, w, kMaxDrain,
                                 "at most 10m (systemd's stop timeout must cover it)", shutdown.drain);
                           }}};
  r.mapping(node, at, fields);
}

void read_metrics(Reader& r, Node node, At at, Metrics& metrics) {
  const Field fields[] = {{"listen", [&](Node v, At w) {
                             const auto text = r.scalar(v, w, "ADDRESS:PORT");
                             if (!text) return;
                             if (!text->empty() && !parse_host_port(*text)) {
                               return r.error(w, "expected ADDRESS:PORT with an IP literal, e.g. "
                                                 "127.0.0.1:9100 or [::1]:9100 (empty: off), got '" +
                                                     *text + "'");
                             }
                             metrics.listen = *text;
                           }}};
  r.mapping(node, at, fields);
}

void check_tls(Reader& r, const Tls& tls) {
  if (!tls.enabled) return;
  if (tls.cert.empty()) {
    r.error(r.locate("tls.cert"), "TLS is enabled, so a certificate file is needed");
  }
  if (tls.key.empty()) {
    r.error(r.locate("tls.key"), "TLS is enabled, so a private key file is needed");
  }
}

// Two equal entries would make the second bind() fail at startup, far from the cause.
void check_listen(Reader& r, const std::vector<ListenAddress>& listen) {
  for (std::size_t i = 0; i < listen.size(); ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      if (listen[i] == listen[j] && listen[i].port != 0) {
        r.error(r.locate("listen[" + std::to_string(i) + "]"),
                "the same address and port as listen[" + std::to_string(j) + "]");
      }
    }
  }
}

}  // namespace

Config read_config(Reader& r, const YAML::Node& root) {
  Config c;
  const Field fields[] = {{"listen", [&](Node v, At w) { read_listen(r, v, w, c.listen); }},
                          {"tls", [&](Node v, At w) { read_tls(r, v, w, c.tls); }},
                          {"workers", [&](Node v, At w) { read_workers(r, v, w, c.workers); }},
                          {"devices", [&](Node v, At w) { read_devices(r, v, w, c.devices); }},
                          {"fifo", [&](Node v, At w) { read_fifo(r, v, w, c.fifo); }},
                          {"spool", [&](Node v, At w) { read_spool(r, v, w, c.spool); }},
                          {"runtime", [&](Node v, At w) { read_runtime(r, v, w, c.runtime); }},
                          {"timeouts", [&](Node v, At w) { read_timeouts(r, v, w, c.timeouts); }},
                          {"protocol", [&](Node v, At w) { read_protocol(r, v, w, c.protocol); }},
                          {"limits", [&](Node v, At w) { read_limits(r, v, w, c.limits); }},
                          {"push", [&](Node v, At w) { read_push(r, v, w, c.push); }},
                          {"shutdown", [&](Node v, At w) { read_shutdown(r, v, w, c.shutdown); }},
                          {"log", [&](Node v, At w) { read_log(r, v, w, c.log); }},
                          {"metrics", [&](Node v, At w) { read_metrics(r, v, w, c.metrics); }}};
  r.mapping(root, where_of("", root.Mark()), fields);
  return c;
}

void check_config(Reader& r, const Config& c) {
  check_tls(r, c.tls);
  check_listen(r, c.listen);
  if (c.limits.per_ip > c.limits.max_connections) {
    r.error(r.locate("limits.per_ip"), "per_ip (" + std::to_string(c.limits.per_ip) +
                                           ") is above limits.max_connections (" +
                                           std::to_string(c.limits.max_connections) + ")");
  }
  if (c.fifo.push == c.fifo.inbound) {
    r.error(r.locate("fifo.inbound"), "the same file as fifo.push; the two FIFOs must differ");
  }
  if (!c.fifo.events.empty() && (c.fifo.events == c.fifo.push || c.fifo.events == c.fifo.inbound)) {
    r.error(r.locate("fifo.events"), "the same file as fifo.push or fifo.inbound; the FIFOs must differ");
  }
}

}  // namespace iotsocket::config
