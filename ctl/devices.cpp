#include "ctl/devices.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>

#include <fmt/core.h>

#include "ctl/import_file.hpp"
#include "ctl/time_text.hpp"
#include "protocol/device_id.hpp"

namespace iotsocket::ctl {
namespace {

using Mode = DeviceRegistry::Mode;

std::optional<DeviceRegistry> open_registry(const std::string& path, Mode mode) {
  auto registry = DeviceRegistry::open(path, mode);
  if (!registry) {
    fail(registry.error());
    return std::nullopt;
  }
  return std::move(registry).value();
}

int done(const Status& status) { return status ? kExitOk : fail(status.error()); }

// One line per bad line, "FILE:LINE: what", then how many there were: the operator mends
// them all before the next run.
int report_bad_lines(const std::string& name, const BadLines& bad) {
  for (const BadLine& line : bad.first) fail(name + ":" + std::to_string(line.line) + ": " + line.what);
  if (bad.count > bad.first.size()) {
    fail(name + ": ... and " + std::to_string(bad.count - bad.first.size()) + " more bad lines");
  }
  if (!bad.read_error.empty()) fail(name + ": " + bad.read_error);
  const std::string count = bad.count == 1 ? "1 bad line" : std::to_string(bad.count) + " bad lines";
  return fail(name + ": " + (bad.count > 0 ? count + "; " : std::string()) + "nothing imported");
}

}  // namespace

int fail(std::string_view message) {
  std::cerr << "iotsocketctl: " << message << '\n';
  return kExitFailed;
}

int devices_add(const std::string& registry, DeviceId id, std::optional<std::string> key) {
  auto opened = open_registry(registry, Mode::read_write);
  if (!opened) return kExitFailed;
  const bool generated = !key;
  const auto added = opened->add(id, std::move(key));
  if (!added) return fail(added.error());
  if (generated) {
    std::cout << protocol::to_string(id) << ' ' << *added << '\n';
    std::cerr << "iotsocketctl: note: keep the key now: the registry keeps only a hash of it, "
                 "so iotsocketctl cannot show it again\n";
  } else {
    std::cout << protocol::to_string(id) << '\n';
  }
  return kExitOk;
}

int devices_list(const std::string& registry) {
  auto opened = open_registry(registry, Mode::read_only);
  if (!opened) return kExitFailed;
  const auto devices = opened->list();
  if (!devices) return fail(devices.error());
  constexpr std::string_view kRow = "{:<10}  {:<7}  {:<20}  {}\n";
  fmt::print(kRow, "ID", "ENABLED", "CREATED", "LAST SEEN");
  for (const DeviceInfo& device : *devices) {
    fmt::print(kRow, protocol::to_string(device.id), device.enabled ? "yes" : "no",
               iso_utc(device.created_at), device.last_seen ? iso_utc(*device.last_seen) : "never");
  }
  return kExitOk;
}

int devices_remove(const std::string& registry, DeviceId id) {
  auto opened = open_registry(registry, Mode::read_write);
  return opened ? done(opened->remove(id)) : kExitFailed;
}

int devices_set_enabled(const std::string& registry, DeviceId id, bool enabled) {
  auto opened = open_registry(registry, Mode::read_write);
  return opened ? done(opened->set_enabled(id, enabled)) : kExitFailed;
}

int devices_import(const std::string& registry, const std::string& file, bool fast_hash) {
  std::ifstream in_file;
  if (file != "-") {
    in_file.open(file);
    if (!in_file) return fail("cannot open " + file + ": " + std::strerror(errno));
  }
  std::istream& in = file == "-" ? std::cin : in_file;
  const auto devices = read_import(in);
  if (!devices) return report_bad_lines(file == "-" ? "stdin" : file, devices.error());
  auto opened = open_registry(registry, Mode::read_write);
  if (!opened) return kExitFailed;
  const auto imported =
      opened->import(*devices, fast_hash ? kGeneratedKeyIterations : kGivenKeyIterations);
  if (!imported) return fail(imported.error());
  std::cout << "imported " << *imported << " devices\n";
  return kExitOk;
}

}  // namespace iotsocket::ctl
