// iotsocket-client, the command: stdin lines become frames, pushes become stdout lines.
// main.cpp parses the command line into CommandOptions; run() does the rest.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "iotsocket/client.hpp"

namespace iotsocket::client {

// Exit codes, as --help lists them.
enum ExitCode : int {
  kExitOk = 0,
  kExitServerGone = 1,     // no connection (and --once, or --retries used up)
  kExitUsage = 2,          // bad option, unreadable file, bad pin or key
  kExitAuthRefused = 3,    // the server refused the login (--auth-retries used up)
  kExitUntrusted = 4,      // pin_mismatch or certificate_rejected
  kExitLinesRefused = 5,   // --once: some stdin lines were not valid payloads (the rest went)
};

struct CommandOptions {
  Options client;
  std::optional<std::uint64_t> count;  // exit after this many pushes
  Duration interval{0};                // at most one stdin line per interval
  bool once = false;                   // one connection; exit when stdin ends and all is sent
  bool print_pin = false;              // connect, print the server's pin, exit
  int verbosity = 0;                   // -1 quiet, 0 warnings, 1 info, 2 debug
};

// Exit code for an error that stopped the client.
int exit_code_for(const Error& error) noexcept;

int run(CommandOptions options);

}  // namespace iotsocket::client
