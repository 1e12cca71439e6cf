#include "bench/report.hpp"

#include <fmt/format.h>

#include <algorithm>

#include "bench/stats.hpp"

namespace iotsocket::bench {
namespace {

constexpr std::array<std::string_view, kFailureCount> kFailureNames = {
    "connect_refused", "connect_error", "tls_failed",
    "closed_before_login", "closed_after_login", "timeout"};

double ms(std::uint64_t us) { return static_cast<double>(us) / 1000.0; }

std::optional<double> earliest(std::optional<double> a, std::optional<double> b) {
  if (!a) return b;
  if (!b) return a;
  return std::min(*a, *b);
}
std::optional<double> latest(std::optional<double> a, std::optional<double> b) {
  if (!a) return b;
  if (!b) return a;
  return std::max(*a, *b);
}

double span(std::optional<double> first, std::optional<double> last) {
  return first && last ? *last - *first : 0.0;
}

}  // namespace

std::string_view name(Failure f) { return kFailureNames[static_cast<std::size_t>(f)]; }

std::uint64_t FleetStats::server_closes() const {
  return failed[static_cast<std::size_t>(Failure::closed_before_login)] +
         failed[static_cast<std::size_t>(Failure::closed_after_login)];
}

std::uint64_t FleetStats::failed_total() const {
  std::uint64_t n = 0;
  for (const auto f : failed) n += f;
  return n;
}

void FleetStats::merge(FleetStats&& o) {
  attempted += o.attempted;
  not_started += o.not_started;
  up += o.up;
  for (std::size_t i = 0; i < kFailureCount; ++i) failed[i] += o.failed[i];
  handshake_us.insert(handshake_us.end(), o.handshake_us.begin(), o.handshake_us.end());
  frames_sent += o.frames_sent;
  frames_skipped += o.frames_skipped;
  first_send_s = earliest(first_send_s, o.first_send_s);
  last_send_s = latest(last_send_s, o.last_send_s);
  pushes += o.pushes;
  bad_pushes += o.bad_pushes;
  push_fresh += o.push_fresh;
  push_out_of_order += o.push_out_of_order;
  push_duplicates += o.push_duplicates;
  push_foreign += o.push_foreign;
  push_latency_us.insert(push_latency_us.end(), o.push_latency_us.begin(), o.push_latency_us.end());
  last_push_s = latest(last_push_s, o.last_push_s);
}

double rate(std::uint64_t count, std::optional<double> first, std::optional<double> last) {
  const double s = span(first, last);
  return s > 0 ? static_cast<double>(count) / s : 0.0;
}

std::uint64_t pushes_missing(const Report& r) {
  const std::uint64_t arrived = r.fleet.push_arrivals();
  return r.push.written > arrived ? r.push.written - arrived : 0;
}

double push_receive_rate(const Report& r) {
  return rate(r.fleet.push_arrivals(), r.push.first_write_s, r.fleet.last_push_s);
}

namespace {

void print_push_text(std::FILE* out, const Report& r) {
  const PushWriteStats& p = r.push;
  const FleetStats& f = r.fleet;
  const LatencySummary l = summarize(f.push_latency_us);
  fmt::print(out, "push writes   written {} of {} to {} devices  {:.1f} pushes/s over {:.2f} s of writing"
                  "  (rate {}, stopped: {})\n",
             p.written, p.requested, p.devices, rate(p.written, p.first_write_s, p.last_write_s),
             span(p.first_write_s, p.last_write_s),
             p.rate > 0 ? fmt::format("{}/s", p.rate) : std::string("unpaced"), p.stopped);
  fmt::print(out, "push receipt  received {}  missing {}  duplicates {}  out of order {}  not this run's {}"
                  "  {:.1f} pushes/s from first write to last receipt\n",
             f.push_arrivals(), pushes_missing(r), f.push_duplicates, f.push_out_of_order,
             f.push_foreign, push_receive_rate(r));
  fmt::print(out, "push latency  p50 {:.3f} ms  p90 {:.3f} ms  p99 {:.3f} ms  max {:.3f} ms  (n={}; FIFO write -> device)\n",
             ms(l.p50), ms(l.p90), ms(l.p99), ms(l.max), l.count);
}

void print_push_json(std::FILE* out, const Report& r) {
  const PushWriteStats& p = r.push;
  const FleetStats& f = r.fleet;
  const LatencySummary l = summarize(f.push_latency_us);
  fmt::print(out,
             "\"push_fifo\":{{\"requested\":{},\"rate\":{},\"devices\":{},\"written\":{},"
             "\"write_per_second\":{:.1f},\"write_seconds\":{:.3f},\"stopped\":\"{}\","
             "\"received\":{},\"missing\":{},\"duplicates\":{},\"out_of_order\":{},\"foreign\":{},"
             "\"receive_per_second\":{:.1f},"
             "\"latency_ms\":{{\"count\":{},\"p50\":{:.3f},\"p90\":{:.3f},\"p99\":{:.3f},\"max\":{:.3f}}}}},",
             p.requested, p.rate, p.devices, p.written, rate(p.written, p.first_write_s, p.last_write_s),
             span(p.first_write_s, p.last_write_s), p.stopped, f.push_arrivals(), pushes_missing(r),
             f.push_duplicates, f.push_out_of_order, f.push_foreign, push_receive_rate(r), l.count,
             ms(l.p50), ms(l.p90), ms(l.p99), ms(l.max));
}

}  // namespace

void print_text(std::FILE* out, const Report& r) {
  const FleetStats& f = r.fleet;
  const LatencySummary h = summarize(f.handshake_us);
  fmt::print(out, "iotsocket-bench: {} devices -> {} ({}), {} thread(s)\n", r.devices,
             r.target, r.tls ? "TLS" : "plain TCP", r.threads);
  fmt::print(out, "connections   attempted {}  up {}  failed {}  not started {}\n",
             f.attempted, f.up, f.failed_total(), f.not_started);
  fmt::print(out, "  failed by reason:");
  for (std::size_t i = 0; i < kFailureCount; ++i) {
    fmt::print(out, " {} {}", kFailureNames[i], f.failed[i]);
  }
  fmt::print(out, "\n");
  fmt::print(out, "handshake     p50 {:.2f} ms  p90 {:.2f} ms  p99 {:.2f} ms  max {:.2f} ms  (n={})\n",
             ms(h.p50), ms(h.p90), ms(h.p99), ms(h.max), h.count);
  fmt::print(out, "frames        sent {}  skipped {}  {:.1f} frames/s over {:.2f} s of sending\n",
             f.frames_sent, f.frames_skipped, rate(f.frames_sent, f.first_send_s, f.last_send_s),
             span(f.first_send_s, f.last_send_s));
  fmt::print(out, "server closes {} during the run\n", f.server_closes());
  fmt::print(out, "pushes        received {}  undecodable streams {}\n", f.pushes, f.bad_pushes);
  if (r.inbound.enabled) {
    const InboundStats& in = r.inbound;
    fmt::print(out, "inbound FIFO  records {} of {} sent  {:.1f} records/s  (other devices {}, bad lines {})\n",
               in.records, f.frames_sent, rate(in.records, in.first_s, in.last_s),
               in.other_devices, in.bad_lines);
  }
  if (r.push.enabled) print_push_text(out, r);
  fmt::print(out, "wall time     {:.2f} s  (ended: {})\n", r.wall_s, r.ended);
}

void print_json(std::FILE* out, const Report& r) {
  const FleetStats& f = r.fleet;
  const LatencySummary h = summarize(f.handshake_us);
  std::string failed;
  for (std::size_t i = 0; i < kFailureCount; ++i) {
    failed += fmt::format("{}\"{}\":{}", i ? "," : "", kFailureNames[i], f.failed[i]);
  }
  // Every string here is ours (an address and fixed words), so none needs escaping.
  fmt::print(out,
             "{{\"target\":\"{}\",\"tls\":{},\"devices\":{},\"threads\":{},"
             "\"connections\":{{\"attempted\":{},\"up\":{},\"failed\":{},\"not_started\":{},"
             "\"failed_by_reason\":{{{}}}}},"
             "\"handshake_ms\":{{\"count\":{},\"p50\":{:.3f},\"p90\":{:.3f},\"p99\":{:.3f},\"max\":{:.3f}}},"
             "\"frames\":{{\"sent\":{},\"skipped\":{},\"per_second\":{:.1f},\"send_seconds\":{:.3f}}},"
             "\"server_closes\":{},\"pushes\":{{\"received\":{},\"undecodable_streams\":{}}},",
             r.target, r.tls, r.devices, r.threads, f.attempted, f.up, f.failed_total(),
             f.not_started, failed, h.count, ms(h.p50), ms(h.p90), ms(h.p99), ms(h.max),
             f.frames_sent, f.frames_skipped, rate(f.frames_sent, f.first_send_s, f.last_send_s),
             span(f.first_send_s, f.last_send_s), f.server_closes(), f.pushes, f.bad_pushes);
  if (r.inbound.enabled) {
    const InboundStats& in = r.inbound;
    fmt::print(out,
               "\"inbound\":{{\"records\":{},\"expected\":{},\"per_second\":{:.1f},"
               "\"other_devices\":{},\"bad_lines\":{}}},",
               in.records, f.frames_sent, rate(in.records, in.first_s, in.last_s),
               in.other_devices, in.bad_lines);
  }
  if (r.push.enabled) print_push_json(out, r);
  fmt::print(out, "\"wall_seconds\":{:.3f},\"ended\":\"{}\"}}\n", r.wall_s, r.ended);
}

}  // namespace iotsocket::bench
