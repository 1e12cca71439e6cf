// iotsocket-bench: the load generator. Checks the options, raises the file limit, runs
// one event loop per thread over its share of the devices, and prints the report.
#include <sys/resource.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "bench/address.hpp"
#include "bench/cli.hpp"
#include "bench/loop.hpp"
#include "bench/options.hpp"
#include "bench/push_ledger.hpp"
#include "bench/push_writer.hpp"
#include "bench/stream.hpp"

namespace iotsocket::bench {
namespace {

// Descriptors beyond one per device: stdio, epoll instances, the FIFO, OpenSSL's files.
constexpr rlim_t kSpareFiles = 64;

void init_log() {
  // A thread-safe sink: with --threads, every loop may log.
  auto logger = std::make_shared<spdlog::logger>(
      "iotsocket-bench", std::make_shared<spdlog::sinks::stderr_sink_mt>());
  logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e %l %n: %v");
  logger->set_level(spdlog::level::info);
  spdlog::set_default_logger(std::move(logger));
}

std::optional<std::string> raise_file_limit(std::uint64_t devices) {
  const rlim_t need = static_cast<rlim_t>(devices) + kSpareFiles;
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0) return std::string("getrlimit() failed: ") + std::strerror(errno);
  if (lim.rlim_cur >= need) return std::nullopt;
  if (lim.rlim_max != RLIM_INFINITY && lim.rlim_max < need) {
    return "--devices " + std::to_string(devices) + " needs " + std::to_string(need) +
           " open files, but the hard limit RLIMIT_NOFILE (ulimit -Hn) is " +
           std::to_string(lim.rlim_max) + "; raise it (limits.conf, LimitNOFILE=) or use at most " +
           std::to_string(lim.rlim_max > kSpareFiles ? lim.rlim_max - kSpareFiles : 0) +
           " devices per process";
  }
  lim.rlim_cur = need;
  if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) return std::string("setrlimit(RLIMIT_NOFILE) failed: ") + std::strerror(errno);
  return std::nullopt;
}

extern "C" void on_stop_signal(int) { g_stop.store(true); }

void install_signals() {
  struct sigaction sa{};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  std::signal(SIGPIPE, SIG_IGN);  // a write to a closed socket is an error value, not death
}

// Loop t's share of the devices: contiguous, sizes differ by at most one.
FleetSetup share(const FleetSetup& all, unsigned t, unsigned loops) {
  FleetSetup s = all;
  const std::uint64_t base = all.count / loops;
  const std::uint64_t extra = all.count % loops;
  s.first_index = t * base + std::min<std::uint64_t>(t, extra);
  s.count = base + (t < extra ? 1 : 0);
  s.connect_rate = all.connect_rate / loops;
  return s;
}

bool clean(const Report& r, const Options& o) {
  const bool inbound_ok = !r.inbound.enabled || r.inbound.records >= r.fleet.frames_sent;
  const bool push_ok = !r.push.enabled ||
                       (r.push.written == r.push.requested && pushes_missing(r) == 0 &&
                        r.fleet.push_duplicates == 0 && r.fleet.push_out_of_order == 0);
  return r.ended != "error" && r.fleet.failed_total() == 0 && r.fleet.not_started == 0 &&
         r.fleet.up == o.devices && inbound_ok && push_ok;
}

int run(const Options& o) {
  if (auto e = check_options(o)) return spdlog::error("{}", *e), 2;
  const auto target = loopback_target(o.host, o.port);
  if (!target) return spdlog::error("{}", target.error()), 2;
  const auto sources = parse_source_ips(o.source_ips);
  if (!sources) return spdlog::error("{}", sources.error()), 2;
  if (!sources->empty() && target->family != AF_INET) {
    return spdlog::error("--source-ips needs an IPv4 --host (127.0.0.0/8)"), 2;
  }
  if (auto e = raise_file_limit(o.devices)) return spdlog::error("{}", *e), 1;
  std::optional<ClientTls> tls;
  if (!o.no_tls) {
    auto t = ClientTls::make(o.ca);
    if (!t) return spdlog::error("{}", t.error()), 1;
    tls.emplace(std::move(*t));
  }
  install_signals();

  const auto start = Clock::now();
  std::optional<InboundCounter> counter;
  if (!o.count_inbound.empty()) {
    auto c = InboundCounter::open(o.count_inbound, protocol::DeviceId{o.first_id}, o.devices, start);
    if (!c) return spdlog::error("{}", c.error()), 1;
    counter.emplace(std::move(*c));
  }
  std::optional<PushWriter> writer;
  std::optional<PushLedger> ledger;
  if (push_mode(o)) {
    auto w = PushWriter::open(o.push_fifo);
    if (!w) return spdlog::error("{}", w.error()), 1;
    writer.emplace(std::move(*w));
    ledger.emplace(*o.pushes);
  }
  FleetSetup all{.options = &o, .target = *target, .sources = *sources,
                 .tls = tls ? tls->get() : nullptr, .first_index = 0, .count = o.devices,
                 .connect_rate = o.connect_rate, .start = start,
                 .ledger = ledger ? &*ledger : nullptr};
  const auto deadline = start + seconds(o.duration);
  Progress progress;
  progress.loops = o.threads;
  progress.devices = o.devices;
  progress.hold_s = o.hold.value_or(0);
  progress.push.enabled = push_mode(o);
  std::vector<LoopResult> results(o.threads);
  PushWriteStats pushed;
  {
    std::vector<std::jthread> threads;
    if (writer) threads.emplace_back([&] { pushed = writer->run(o, progress, start, deadline); });
    for (unsigned t = 1; t < o.threads; ++t) {
      threads.emplace_back([&, t] { results[t] = run_loop(share(all, t, o.threads), nullptr, progress, deadline); });
    }
    results[0] = run_loop(share(all, 0, o.threads), counter ? &*counter : nullptr, progress, deadline);
  }
  Report report{.target = (target->family == AF_INET6 ? "[" + o.host + "]" : o.host) + ":" +
                          std::to_string(o.port),
                .tls = !o.no_tls, .devices = o.devices, .threads = o.threads,
                .inbound = results[0].inbound,
                .push = pushed,
                .wall_s = std::chrono::duration<double>(Clock::now() - start).count(),
                .ended = results[0].ended};
  for (auto& r : results) {
    report.fleet.merge(std::move(r.fleet));
    if (r.ended == "error" || r.ended == "signal") report.ended = r.ended;
  }
  (o.json ? print_json : print_text)(stdout, report);
  return clean(report, o) ? 0 : 1;
}

}  // namespace
}  // namespace iotsocket::bench

int main(int argc, char** argv) {
  iotsocket::bench::init_log();
  CLI::App app{"iotsocket-bench"};
  iotsocket::bench::Options options;
  iotsocket::bench::add_options(app, options);
  CLI11_PARSE(app, argc, argv);
  return iotsocket::bench::run(options);
}
