#include "bench/options.hpp"

#include <cmath>
#include <string_view>

#include "protocol/device_id.hpp"
#include "protocol/encoder.hpp"
#include "protocol/limits.hpp"

namespace iotsocket::bench {
namespace {

bool positive(double v) { return std::isfinite(v) && v > 0; }
bool non_negative(double v) { return std::isfinite(v) && v >= 0; }

std::optional<std::string> check_devices(const Options& o) {
  if (o.devices == 0) return "--devices must be at least 1";
  if (o.first_id > protocol::kMaxDeviceId ||
      o.devices - 1 > protocol::kMaxDeviceId - o.first_id) {
    return "device IDs --first-id .. --first-id + --devices - 1 must stay within 0.." +
           std::to_string(protocol::kMaxDeviceId);
  }
  if (!protocol::is_sendable_key(o.key)) {
    return "--key must be 1-512 printable ASCII bytes without ':', spaces or \"|#|\"";
  }
  if (o.threads == 0 || o.threads > kMaxThreads) {
    return "--threads must be 1.." + std::to_string(kMaxThreads);
  }
  if (o.threads > o.devices) return "--threads must not exceed --devices";
  return std::nullopt;
}

std::optional<std::string> check_traffic(const Options& o) {
  if (!non_negative(o.rate) || o.rate > kMaxRatePerDevice) {
    return "--rate must be 0.." + std::to_string(static_cast<int>(kMaxRatePerDevice)) +
           " frames per second per device";
  }
  if (o.frames && *o.frames == 0) return "--frames must be at least 1 (the login frame)";
  if (o.frames && *o.frames > 1 && o.rate == 0) {
    return "--frames above 1 needs --rate (frames per second per device after the login)";
  }
  if (o.payload_bytes < protocol::kMinBody || o.payload_bytes > protocol::kMaxBody) {
    return "--payload-bytes must be " + std::to_string(protocol::kMinBody) + ".." +
           std::to_string(protocol::kMaxBody);
  }
  if (!non_negative(o.connect_rate)) return "--connect-rate must be 0 (no limit) or more";
  if (!non_negative(o.linger)) return "--linger must be 0 or more seconds";
  if (!positive(o.handshake_timeout)) return "--handshake-timeout must be more than 0 seconds";
  if (!positive(o.duration)) return "--duration must be more than 0 seconds";
  return std::nullopt;
}

std::optional<std::string> check_hold(const Options& o) {
  if (o.keepalive && !o.hold) return "--keepalive needs --hold";
  if (!o.hold) return std::nullopt;
  if (!positive(*o.hold)) return "--hold must be more than 0 seconds";
  if (o.rate > 0 || (o.frames && *o.frames > 1)) {
    return "--hold keeps connections idle after the login frame: use --keepalive, not "
           "--rate or --frames";
  }
  if (*o.hold >= o.duration) {
    return "--hold must be shorter than --duration (the hard stop, default 60 s); the "
           "connection ramp comes on top of the hold";
  }
  if (o.keepalive) {
    if (!positive(*o.keepalive) || *o.keepalive >= kServerIdleSeconds) {
      return "--keepalive must be more than 0 and less than the server's idle timeout (90 s)";
    }
  } else if (*o.hold >= kServerIdleSeconds) {
    return "--hold of 90 s or more without --keepalive: the server closes connections idle "
           "for 90 s; add --keepalive S (S < 90)";
  }
  return std::nullopt;
}

std::optional<std::string> check_push(const Options& o) {
  if (!push_mode(o)) {
    if (o.pushes) return "--pushes needs --push-fifo (the server's push FIFO)";
    if (o.push_rate) return "--push-rate needs --push-fifo (the server's push FIFO)";
    return std::nullopt;
  }
  if (!o.pushes) return "--push-fifo needs --pushes N (the number of pushes to write in all)";
  if (*o.pushes == 0 || *o.pushes > kMaxPushes) {
    return "--pushes must be 1.." + std::to_string(kMaxPushes);
  }
  if (o.push_rate && !non_negative(*o.push_rate)) {
    return "--push-rate must be 0 (as fast as the FIFO takes them) or more pushes per second";
  }
  if (o.hold) return "--push-fifo and --hold do not mix: a push run ends when every push arrived";
  if (o.push_fifo == o.count_inbound) return "--push-fifo and --count-inbound must be different FIFOs";
  return std::nullopt;
}

}  // namespace

std::optional<std::string> check_options(const Options& options) {
  if (options.port == 0) return "--port is required (1..65535)";
  if (auto e = check_devices(options)) return e;
  if (auto e = check_traffic(options)) return e;
  if (auto e = check_hold(options)) return e;
  return check_push(options);
}

std::optional<std::uint64_t> frames_per_device(const Options& options) {
  if (options.frames) return options.frames;
  if (options.rate == 0) return 1;
  return std::nullopt;
}

std::chrono::steady_clock::duration seconds(double s) {
  return std::chrono::duration_cast<std::chrono::steady_clock::duration>(
      std::chrono::duration<double>(s));
}

}  // namespace iotsocket::bench
