#include "config/reload.hpp"

#include <utility>

namespace iotsocket::config {
namespace {

std::vector<std::string> names_of(std::initializer_list<std::pair<const char*, bool>> changed) {
  std::vector<std::string> names;
  for (const auto& [name, differs] : changed) {
    if (differs) names.emplace_back(name);
  }
  return names;
}

}  // namespace

Config with_reloadable(const Config& running, const Config& next) {
  Config merged = running;
  // The files only: the master loads and checks the pair before anything is applied.
  merged.tls.cert = next.tls.cert;
  merged.tls.key = next.tls.key;
  merged.devices = next.devices;
  merged.timeouts = next.timeouts;
  merged.protocol = next.protocol;
  merged.limits.max_connections = next.limits.max_connections;
  merged.limits.per_ip = next.limits.per_ip;
  merged.push.offline_max = next.push.offline_max;
  merged.push.offline_max_age = next.push.offline_max_age;
  merged.push.write_queue = next.push.write_queue;
  merged.shutdown = next.shutdown;
  merged.log.level = next.log.level;
  return merged;
}

std::vector<std::string> reloadable_changes(const Config& running, const Config& next) {
  const Config& a = running;
  const Config& b = next;
  auto names = names_of({
      {"devices.sqlite", a.devices.sqlite != b.devices.sqlite},
      {"devices.duplicate", a.devices.duplicate != b.devices.duplicate},
      {"timeouts.idle", a.timeouts.idle != b.timeouts.idle},
      {"timeouts.handshake", a.timeouts.handshake != b.timeouts.handshake},
      {"timeouts.first_frame", a.timeouts.first_frame != b.timeouts.first_frame},
      {"timeouts.max_connection_age", a.timeouts.max_connection_age != b.timeouts.max_connection_age},
      {"protocol.time_tolerance", a.protocol.time_tolerance != b.protocol.time_tolerance},
      {"protocol.flood_frames", a.protocol.flood_frames != b.protocol.flood_frames},
      {"protocol.flood_window", a.protocol.flood_window != b.protocol.flood_window},
      {"limits.max_connections", a.limits.max_connections != b.limits.max_connections},
      {"limits.per_ip", a.limits.per_ip != b.limits.per_ip},
      {"push.offline_max", a.push.offline_max != b.push.offline_max},
      {"push.offline_max_age", a.push.offline_max_age != b.push.offline_max_age},
      {"push.write_queue", a.push.write_queue != b.push.write_queue},
      {"shutdown.drain", a.shutdown.drain != b.shutdown.drain},
      {"log.level", a.log.level != b.log.level},
  });
  // A reloadable field added later and not named above still reaches the workers (the
  // master tells them only when something is named). The certificate files are not a
  // setting here: the TLS reload has its own message.
  Config same_files = a;
  same_files.tls.cert = b.tls.cert;
  same_files.tls.key = b.tls.key;
  if (names.empty() && with_reloadable(a, b) != same_files) names.emplace_back("a setting");
  return names;
}

std::vector<std::string> restart_only_changes(const Config& running, const Config& next) {
  const Config& a = running;
  const Config& b = next;
  auto names = names_of({
      {"listen", a.listen != b.listen},
      {"tls.enabled", a.tls.enabled != b.tls.enabled},
      {"workers", a.workers != b.workers},
      {"fifo", a.fifo != b.fifo},
      {"spool", a.spool != b.spool},
      {"runtime", a.runtime != b.runtime},
      {"limits.max_devices", a.limits.max_devices != b.limits.max_devices},
      // Its default sits beside devices.sqlite, so moving the registry moves it too.
      {"push.offline_db", offline_db_path(a) != offline_db_path(b)},
      {"log.file", a.log.file != b.log.file},
      {"metrics.listen", a.metrics.listen != b.metrics.listen},
  });
  // A setting added later and listed in neither place is still not silently ignored.
  if (names.empty() && with_reloadable(a, b) != b) names.emplace_back("a setting");
  return names;
}

}  // namespace iotsocket::config
