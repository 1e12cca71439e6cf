// iotsocket-client: a device on the command line. Each stdin line is sent as one frame;
// each push the server sends is printed on its own line. See --help, and the README's
// "For device developers".
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>

#include "client/command.hpp"
#include "config/units.hpp"
#include "protocol/device_id.hpp"

namespace {

using namespace iotsocket;
using iotsocket::client::CommandOptions;

constexpr const char* kExitCodes =
    "Exit codes:\n"
    "  0  done: with --once, stdin ended and every line was sent (and --count pushes arrived);\n"
    "     without it, --count pushes arrived; or SIGINT/SIGTERM\n"
    "  1  the server could not be reached or the connection was lost (with --once; else after\n"
    "     --retries attempts in a row), or stdout was closed\n"
    "  2  bad command line or an unreadable --ca/--cert/--key-file file\n"
    "  3  the server refused the login (wrong key, unknown or disabled device, device\n"
    "     connected elsewhere, clock off by 3 s or more): with --once the first time, else\n"
    "     --auth-retries times in a row\n"
    "  4  the server's certificate does not match --pin/--cert or does not verify against --ca\n"
    "  5  with --once: some stdin lines were not valid payloads (5 to 62534 bytes); the others were sent\n"
    "\n"
    "stdin lines are sent as they are (one line, one frame). Pushes are printed one per line,\n"
    "with LF, CR and backslash written as \\n, \\r and \\\\ (as in the server's FIFOs).\n"
    "The key may come from --key-file or the IOTSOCKET_KEY environment variable instead of\n"
    "--key, which other users can see in the process list.";

// A CLI11 option that takes "500ms", "10s", "5m", "24h" (the config file's units).
CLI::Option* add_duration(CLI::App& app, const std::string& name, iotsocket::client::Duration& target,
                          const std::string& help) {
  return app
      .add_option_function<std::string>(
          name,
          [&target, name](const std::string& text) {
            if (text == "0") {
              target = iotsocket::client::Duration::zero();
              return;
            }
            auto parsed = config::parse_duration(text);
            if (!parsed) throw CLI::ValidationError(name, parsed.error());
            target = std::chrono::duration_cast<iotsocket::client::Duration>(*parsed);
          },
          help)
      ->type_name("DURATION");
}

std::string read_key_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw CLI::ValidationError("--key-file", "cannot read " + path);
  std::string key;
  std::getline(in, key);
  while (!key.empty() && (key.back() == '\r' || key.back() == ' ')) key.pop_back();
  return key;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"A device for iotsocket: sends each stdin line as an IOT/1.1 frame over TLS and "
               "prints each push it receives.",
               "iotsocket-client"};
  app.footer(kExitCodes);
  CommandOptions options;
  iotsocket::client::Options& c = options.client;
  c.max_connection_age = std::chrono::hours(23);

  app.add_option("--host", c.host, "Server name or address")->capture_default_str();
  app.add_option("--port", c.port, "Server port")->capture_default_str();
  app.add_option("--id", c.device_id, "Device ID (1 to 10 digits)")
      ->check([](const std::string& text) -> std::string {
        return protocol::parse_device_id(text) ? "" : "'" + text + "' is not a device ID (1 to 10 digits)";
      });
  app.add_option("--key", c.key, "Device key")->envname("IOTSOCKET_KEY");
  std::string key_file;
  app.add_option("--key-file", key_file,
                 "Read the device key from the first line of FILE (before --key and IOTSOCKET_KEY)");

  CLI::Option* ca = app.add_option("--ca", c.ca_file, "Trust servers whose chain verifies against this PEM bundle");
  CLI::Option* cert = app.add_option(
      "--cert", c.cert_file, "Trust only the server certificate in this PEM file (the legacy cert_path)");
  CLI::Option* pin =
      app.add_option("--pin", c.pins, "Trust a server whose public key has this pin (sha256/BASE64); repeatable");
  app.add_flag("--insecure", c.insecure, "Do not authenticate the server (tests only; warns)")
      ->excludes(ca)
      ->excludes(cert)
      ->excludes(pin);
  app.add_option("--server-name", c.server_name, "Name to send (SNI) and to check with --ca; default --host");

  app.add_option("--count", options.count, "Exit after receiving N pushes");
  add_duration(app, "--interval", options.interval, "Send at most one stdin line per DURATION");
  app.add_flag("--once", options.once,
               "One connection, no reconnect: exit when stdin ends and every line is sent (and --count pushes arrived)");
  app.add_flag("--print-pin", options.print_pin,
               "Connect, print the server's pin (sha256/BASE64) and exit; no --id needed");

  add_duration(app, "--keepalive", c.keepalive,
               "Send --keepalive-payload after DURATION without a frame (0: never; default 60s)");
  app.add_option("--keepalive-payload", c.keepalive_payload, "Keepalive and login payload")
      ->capture_default_str();
  add_duration(app, "--connect-timeout", c.connect_timeout,
               "Limit of the TCP connect and, again, of the TLS handshake (default 10s)");
  add_duration(app, "--login-grace", c.login_grace,
               "A login counts as accepted when the server keeps the link open this long (default 2s)");
  add_duration(app, "--max-age", c.max_connection_age,
               "Renew the connection before this age (default 23h; 0: never)");
  add_duration(app, "--backoff", c.backoff_initial, "First wait before reconnecting (default 1s)");
  add_duration(app, "--backoff-max", c.backoff_max, "Longest wait before reconnecting (default 60s)");
  add_duration(app, "--time-tolerance", c.time_tolerance, "Accepted |TIME - clock| of pushes (default 3s)");
  app.add_option("--retries", c.max_attempts, "Give up after N failed connection attempts in a row (0: never)")
      ->capture_default_str();
  app.add_option("--auth-retries", c.max_auth_failures,
                 "Give up after N refused logins in a row (0: never)")
      ->capture_default_str();
  app.add_option("--queue", c.queue_limit, "Frames kept while offline")->capture_default_str();
  app.add_option("--max-rate", c.max_rate,
                 "Frames per second at most, under the server's flood limit (0: no limit)")
      ->capture_default_str();
  bool verbose = false;
  bool quiet = false;
  app.add_flag("-v,--verbose", verbose, "Log connections and logins too");
  app.add_flag("-q,--quiet", quiet, "Log errors only");

  try {
    app.parse(argc, argv);
    if (!key_file.empty()) c.key = read_key_file(key_file);
    if (c.ca_file.empty() && c.cert_file.empty() && c.pins.empty() && !c.insecure) {
      throw CLI::RequiredError(
          "no way to authenticate the server: give --cert FILE (the server's certificate), "
          "--ca FILE (a CA bundle) or --pin sha256/... (--insecure accepts any server: tests only)",
          CLI::ExitCodes::RequiredError);
    }
    if (!options.print_pin) {
      if (c.device_id.empty()) throw CLI::RequiredError("--id");
      if (c.key.empty()) throw CLI::RequiredError("--key, --key-file or IOTSOCKET_KEY");
    }
  } catch (const CLI::ParseError& e) {
    const int code = app.exit(e);
    return code == 0 ? 0 : iotsocket::client::kExitUsage;
  }
  options.verbosity = quiet ? -1 : (verbose ? 1 : 0);
  return iotsocket::client::run(std::move(options));
}
