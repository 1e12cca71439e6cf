// iotsocketctl: the operator's command. `devices ...` manages the device registry named
// by the config file (devices.sqlite); `status` and `push` talk to the running server
// (its shared device table and push FIFO), and so do `devices disable/remove`, which close
// the device's live connection.
#include <filesystem>
#include <iostream>
#include <optional>
#include <system_error>
#include <string>

#include <CLI/CLI.hpp>

#include "config/config.hpp"
#include "ctl/devices.hpp"
#include "ctl/server.hpp"
#include "ctl/show.hpp"
#include "protocol/device_id.hpp"

namespace {

using namespace iotsocket;

constexpr const char* kDefaultConfig = "/etc/iotsocket/iotsocket.yaml";

// Device IDs are numbers: "42" and "0000000042" name one device.
const CLI::Validator kDeviceId(
    [](std::string& text) -> std::string {
      if (protocol::parse_device_id(text)) return {};
      return "'" + text + "' is not a device ID (a number of 1 to 10 digits)";
    },
    "DEVICE_ID");

DeviceId device_id(const std::string& checked_text) {
  return *protocol::parse_device_id(checked_text);  // the validator ran first
}

// The config, or nullopt after printing why there is none. A config file that is not there
// is most often the package's default on a developer's machine (`make run` writes its own),
// so the hint says how to name another.
std::optional<config::Config> load_config(const std::string& config_file) {
  auto loaded = config::load_file(config_file);
  if (!loaded) {
    for (const auto& error : loaded.error()) ctl::fail(error.to_string());
    std::error_code unreadable;
    if (!std::filesystem::exists(config_file, unreadable) && !unreadable) {
      ctl::fail(std::string("hint: give the server's config with --config FILE (default ") +
                kDefaultConfig + ", the package's; make run's is var/iotsocket.yaml)");
    }
    return std::nullopt;
  }
  return std::move(*loaded);
}

// --config is accepted before the subcommand and after it, and every subcommand's --help
// lists it: operators type it where they please. Call it once every subcommand exists.
// Given twice, the one after the subcommand wins.
void add_config_option(CLI::App& app, std::string& config_file) {
  app.add_option("-c,--config", config_file,
                 std::string("Server config file (default ") + kDefaultConfig + ")");
  const auto named = [](CLI::App* sub) { return !sub->get_name().empty(); };  // not option groups
  for (CLI::App* sub : app.get_subcommands(named)) add_config_option(*sub, config_file);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Manages an iotsocket server's devices.", "iotsocketctl"};
  app.require_subcommand(1);
  std::string config_file = kDefaultConfig;

  CLI::App* devices = app.add_subcommand("devices", "Add, list, show, remove, disable or enable devices");
  devices->require_subcommand(1);

  std::string id;
  std::string key;
  CLI::App* add = devices->add_subcommand(
      "add", "Add a device; prints `ID KEY` when it generates the key (shown only this once)");
  add->add_option("ID", id, "Device ID")->required()->check(kDeviceId);
  CLI::Option* key_option =
      add->add_option("--key", key, "The device's key (a legacy device's); default: generate one");

  CLI::App* list = devices->add_subcommand("list", "List the devices");
  CLI::App* show = devices->add_subcommand(
      "show", "One device: last seen, last disconnect reason, sessions, clock skew, worker");
  show->add_option("ID", id, "Device ID")->required()->check(kDeviceId);

  CLI::App* remove = devices->add_subcommand("remove", "Remove a device");
  remove->add_option("ID", id, "Device ID")->required()->check(kDeviceId);
  CLI::App* disable = devices->add_subcommand("disable", "Refuse a device's logins");
  disable->add_option("ID", id, "Device ID")->required()->check(kDeviceId);
  CLI::App* enable = devices->add_subcommand("enable", "Accept a device's logins again");
  enable->add_option("ID", id, "Device ID")->required()->check(kDeviceId);

  std::string import_file;
  bool fast_hash = false;
  CLI::App* import = devices->add_subcommand(
      "import", "Add many devices in one transaction (all or none) from lines `ID KEY`; "
                "blank lines and lines starting with # are skipped");
  import->add_option("FILE", import_file, "File to read, - for stdin")->required();
  import->add_flag("--fast-hash", fast_hash,
                   "Hash keys with 1 PBKDF2 iteration instead of 4096: only for keys that are "
                   "long random strings (as `devices add` generates), never for chosen ones");

  CLI::App* status = app.add_subcommand(
      "status",
      "Connected devices (worker, peer, since), per-worker counters, and rejections and closes "
      "by reason since the server started, live");
  bool summary = false;
  status->add_flag("--summary", summary,
                   "Leave out the list of connected devices (a large fleet's is long)");

  std::string payload;
  CLI::App* push = app.add_subcommand(
      "push", "Send PAYLOAD to device ID through the push FIFO (queued if it is offline)");
  push->add_option("ID", id, "Device ID")->required()->check(kDeviceId);
  push->add_option("PAYLOAD", payload, "The bytes to send (5 to 62534)")->required();

  add_config_option(app, config_file);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);  // prints help, or the usage error
    return code == 0 ? ctl::kExitOk : ctl::kExitUsage;
  }

  const auto config = load_config(config_file);
  if (!config) return ctl::kExitFailed;
  if (*status) return ctl::status(*config, summary);
  if (*push) return ctl::push(*config, device_id(id), payload);
  const std::string& registry = config->devices.sqlite;
  // A revoked device loses its live connection too (within a second, on any worker).
  const auto revoke = [&](int code) {
    return code == ctl::kExitOk ? ctl::close_live(*config, device_id(id)) : code;
  };
  if (*add) {
    return ctl::devices_add(registry, device_id(id),
                            key_option->count() > 0 ? std::optional<std::string>(key) : std::nullopt);
  }
  if (*list) return ctl::devices_list(registry);
  if (*show) return ctl::devices_show(*config, device_id(id));
  if (*remove) return revoke(ctl::devices_remove(registry, device_id(id)));
  if (*disable) return revoke(ctl::devices_set_enabled(registry, device_id(id), false));
  if (*enable) return ctl::devices_set_enabled(registry, device_id(id), true);
  if (*import) return ctl::devices_import(registry, import_file, fast_hash);
  return ctl::kExitUsage;  // unreachable: a subcommand is required
}
