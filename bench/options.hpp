// The bench's command line as typed values, and the checks that need more than one option
// (CLI11 checks each option alone). Pure: the unit test runs every rule.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace iotsocket::bench {

// The server closes a connection that sent no complete frame for this long
// (docs/PROTOCOL.md; config `timeouts.idle`), so an idle hold must stay below it.
inline constexpr double kServerIdleSeconds = 90.0;
// The highest --rate: frames per second per device. TIME has 0.1 ms ticks and the
// server's flood limit (333 frames per 3 s by default) closes far earlier anyway.
inline constexpr double kMaxRatePerDevice = 1000.0;
inline constexpr unsigned kMaxThreads = 64;
// The most --pushes: the bench keeps one bit per push to find duplicates (12.5 MB here),
// and at 100,000 pushes/s this is over 15 minutes of pushing.
inline constexpr std::uint64_t kMaxPushes = 100'000'000;

struct Options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;
  std::uint64_t devices = 1;
  std::uint64_t first_id = 1;
  std::string key;
  double rate = 0;                       // frames/s per device after login; 0 = login only
  std::optional<std::uint64_t> frames;   // per device, login frame included
  std::size_t payload_bytes = 32;
  double duration = 60;                  // hard stop, seconds
  std::optional<double> hold;            // idle hold after the ramp, seconds
  std::optional<double> keepalive;       // one frame per device every S seconds while holding
  double connect_rate = 1000;            // new connections per second; 0 = no limit
  std::string source_ips;                // "" = the kernel picks (127.0.0.1)
  bool no_tls = false;
  std::string ca;                        // verify the server against this CA file
  std::string count_inbound;             // the server's inbound FIFO
  std::string push_fifo;                 // push mode: the server's push FIFO
  std::optional<double> push_rate;       // pushes/s over all devices; 0 = as fast as it goes
  std::optional<std::uint64_t> pushes;   // pushes to write in all
  unsigned threads = 1;
  double linger = 1.0;                   // keep connections open after the last frame
  double handshake_timeout = 10;         // connect + TLS handshake, seconds
  bool json = false;
};

// The first problem found, as a message for the user, or nothing.
std::optional<std::string> check_options(const Options& options);

// How many frames each device sends: --frames, else 1 without --rate (the login frame
// only), else no bound (the run ends at --duration).
std::optional<std::uint64_t> frames_per_device(const Options& options);

// Push mode: --push-fifo given.
inline bool push_mode(const Options& options) { return !options.push_fifo.empty(); }

std::chrono::steady_clock::duration seconds(double s);

}  // namespace iotsocket::bench
