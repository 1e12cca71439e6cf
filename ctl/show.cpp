#include "ctl/show.hpp"

#include <optional>
#include <string>
#include <string_view>

#include <fmt/core.h>

#include "common/registry.hpp"
#include "ctl/devices.hpp"
#include "ctl/time_text.hpp"
#include "shm/device_table.hpp"

namespace iotsocket::ctl {
namespace {

constexpr std::string_view kNone = "-";

void line(std::string_view key, std::string_view value) {
  fmt::print("{:<26}{}\n", fmt::format("{}:", key), value.empty() ? kNone : value);
}

std::string signed_ms(std::int32_t ms) { return fmt::format("{:+}", ms); }

std::string when(const std::optional<std::chrono::sys_seconds>& t, std::string_view none) {
  return t ? iso_utc(*t) : std::string(none);
}

// The device as the registry has it.
void print_device(const DeviceInfo& d) {
  line("device", protocol::to_string(d.id));
  line("enabled", d.enabled ? "yes" : "no");
  line("created", iso_utc(d.created_at));
}

// Its connection now, from the running server's table; `table` is null when none runs.
void print_connection(const shm::DeviceTable* table, protocol::DeviceId id) {
  const auto live = table ? table->find(id) : std::nullopt;
  line("state", live ? "connected" : table ? "not connected" : "not connected (server not running)");
  line("worker", live ? std::to_string(live->holder.worker) : "");
  line("worker_pid", live ? std::to_string(table->counters(live->holder.worker).pid.load()) : "");
  line("peer", live && live->peer.length > 0 ? live->peer.to_string() : "");
  line("connected_since", live && live->since_unix > 0 ? iso_utc(live->since_unix) : "");
  line("skew_ms", live && live->skew ? signed_ms(live->skew->last_ms) : "");
  line("skew_max_ms", live && live->skew ? signed_ms(live->skew->largest_ms) : "");
}

// The last session that ended, as the worker recorded it at its end.
void print_last_session(const DeviceInfo& d) {
  line("last_seen", when(d.last_seen, "never"));
  line("sessions", std::to_string(d.sessions));
  line("last_login", when(d.last_login, kNone));
  line("last_peer", d.last_peer);
  line("last_disconnect_reason", d.last_close_reason);
  line("last_session_skew_ms", d.last_skew ? signed_ms(d.last_skew->last_ms) : "");
  line("last_session_skew_max_ms", d.last_skew ? signed_ms(d.last_skew->largest_ms) : "");
}

// Refused logins since the server started (kept in its table only: no disk write each).
void print_refusals(const shm::DeviceTable* table, protocol::DeviceId id) {
  const shm::Refusals refused = table ? table->refusals(id) : shm::Refusals{};
  line("refused_logins", table ? std::to_string(refused.count) : "");
  line("last_refused_reason", refused.last_reason);
  line("last_refused_at", refused.last_reason.empty() ? "" : iso_utc(refused.last_unix));
}

// The running server's table, or nullopt: no segment (the server removes it when it
// stops), or the segment of a server that died without removing it.
std::optional<shm::DeviceTable> running_server(const config::Config& config) {
  auto table = shm::DeviceTable::attach(config.runtime.shm_name);
  if (!table) return std::nullopt;
  if (!table->master_running()) return std::nullopt;
  return std::move(*table);
}

}  // namespace

int devices_show(const config::Config& config, protocol::DeviceId id) {
  auto registry = DeviceRegistry::open(config.devices.sqlite, DeviceRegistry::Mode::read_only);
  if (!registry) return fail(registry.error());
  const auto found = registry->find(id);
  if (!found) return fail(found.error());
  if (!*found) return fail("no device " + protocol::to_string(id));
  const auto table = running_server(config);
  const shm::DeviceTable* live = table ? &*table : nullptr;
  print_device(**found);
  print_connection(live, id);
  print_last_session(**found);
  print_refusals(live, id);
  return kExitOk;
}

}  // namespace iotsocket::ctl
