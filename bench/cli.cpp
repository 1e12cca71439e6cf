#include "bench/cli.hpp"

namespace iotsocket::bench {

void add_options(CLI::App& app, Options& o) {
  app.description(
      "Load generator for iotsocketd: N concurrent IOT/1.1 devices over TLS from one process, "
      "loopback only. Prints a report (connections, handshake latency, frames, server closes) "
      "when the run ends; every run ends by itself at --duration. Push mode (--push-fifo) also "
      "writes pushes into the server's push FIFO and reports their arrival, order and latency.");
  app.add_option("--host", o.host, "Server address: 127.0.0.0/8 or ::1 only")->capture_default_str();
  app.add_option("--port", o.port, "Server port")->required()->check(CLI::Range(1, 65535));
  app.add_option("--devices", o.devices, "Number of devices (connections)")->capture_default_str();
  app.add_option("--first-id", o.first_id, "First device ID; the devices are first-id .. first-id+N-1")
      ->capture_default_str();
  app.add_option("--key", o.key, "The KEY all devices share (fill the registry with "
                                  "`iotsocketctl devices import`)")->required();
  app.add_option("--rate", o.rate, "Frames per second per device after the login frame; "
                                   "0 = the login frame only")->capture_default_str();
  app.add_option("--frames", o.frames, "Frames per device, the login frame included "
                                       "(default: 1 without --rate, else no bound)");
  app.add_option("--payload-bytes", o.payload_bytes, "Body size of each frame (5..62534), "
                                                     "filled deterministically")->capture_default_str();
  app.add_option("--duration", o.duration, "Hard stop in seconds: everything ends by then")
      ->capture_default_str();
  app.add_option("--hold", o.hold, "Hold mode: after the ramp keep all connections open and idle "
                                   "for S seconds (memory measurements); S < 90 (the server's idle "
                                   "timeout) unless --keepalive");
  app.add_option("--keepalive", o.keepalive, "While holding, send one frame per S seconds per device");
  app.add_option("--connect-rate", o.connect_rate, "New connections per second (ramp); 0 = no limit")
      ->capture_default_str();
  app.add_option("--source-ips", o.source_ips,
                 "Spread source addresses over 127.0.0.0/8 so that more than 64k connections fit: "
                 "a range A-B (e.g. 127.0.0.2-127.0.0.9) or a count N (127.0.0.2 and the N-1 after it)");
  app.add_flag("--no-tls", o.no_tls, "Plain TCP (for a server configured with tls: off)");
  app.add_option("--ca", o.ca, "Verify the server's certificate against this CA file "
                               "(default: no verification, for a dev server)");
  app.add_option("--count-inbound", o.count_inbound,
                 "Read the server's inbound FIFO and count the records of the bench's devices "
                 "(the bench must be its only reader); waits until all arrived or --duration");
  app.add_option("--push-fifo", o.push_fifo,
                 "Push mode: write pushes into the server's push FIFO once every device is logged in, "
                 "and measure what the devices receive (needs --pushes)");
  app.add_option("--push-rate", o.push_rate,
                 "Pushes per second over all devices, round robin; 0 (default) = as fast as the FIFO "
                 "takes them");
  app.add_option("--pushes", o.pushes, "Pushes to write in all (push mode)");
  app.add_option("--threads", o.threads, "Event loops (threads), each with a share of the devices")
      ->capture_default_str();
  app.add_option("--linger", o.linger, "Seconds to keep connections open after the last frame, "
                                       "to see server closes")->capture_default_str();
  app.add_option("--handshake-timeout", o.handshake_timeout,
                 "Seconds from connect() to TLS handshake done before a connection counts as a timeout")
      ->capture_default_str();
  app.add_flag("--json", o.json, "Print the report as one JSON object");
}

}  // namespace iotsocket::bench
