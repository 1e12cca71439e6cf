#include "master/metrics_families.hpp"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <functional>
#include <initializer_list>
#include <string_view>
#include <utility>
#include <vector>

namespace iotsocket::master::metrics {
namespace {

using prometheus::Counter;
using prometheus::Gauge;

// Where a series' number comes from in a snapshot.
using Read = std::function<double(const Snapshot&)>;

// One series of a family: its labels (none in a family of one series) and its number.
struct Source {
  prometheus::Labels labels;
  Read read;
};

template <auto Field>
Read worker() {
  return [](const Snapshot& s) { return static_cast<double>(s.workers.*Field); };
}
template <auto Field>
Read master() {
  return [](const Snapshot& s) { return static_cast<double>(s.master.*Field); };
}

// The close reasons that are rejections (a broken rule), or the others.
std::vector<Source> closes(bool rejections) {
  std::vector<Source> out;
  for (std::size_t i = 0; i < shm::kCloseReasonCount; ++i) {
    if (shm::kCloseReasons[i].rejection != rejections) continue;
    out.push_back({{{"reason", std::string(shm::kCloseReasons[i].name)}},
                   [i](const Snapshot& s) { return static_cast<double>(s.workers.closes[i]); }});
  }
  return out;
}

double tls_handshake_failures(const Snapshot& s) {
  const auto& closes = s.workers.closes;
  return static_cast<double>(closes[shm::close_reason_index("tls_failed")] +
                             closes[shm::close_reason_index("handshake_timeout")]);
}

}  // namespace

struct Families::Series {
  prometheus::Registry registry;
  std::vector<std::pair<Counter*, Read>> counters;
  std::vector<std::pair<Gauge*, Read>> gauges;
  prometheus::Family<Gauge>* certificate_family = nullptr;
  Gauge* certificate = nullptr;  // while there is a certificate

  Series() {
    add_connections();
    add_traffic();
    add_pushes();
    add_processes();
  }

  template <typename Builder, typename Metric>
  void add(Builder builder, std::string_view name, std::string_view help,
           std::vector<Source> sources, std::vector<std::pair<Metric*, Read>>& into) {
    auto& family =
        builder.Name("iotsocket_" + std::string(name)).Help(std::string(help)).Register(registry);
    for (Source& s : sources) into.emplace_back(&family.Add(s.labels), std::move(s.read));
  }
  void counter(std::string_view name, std::string_view help, std::vector<Source> sources) {
    add(prometheus::BuildCounter(), name, help, std::move(sources), counters);
  }
  void gauge(std::string_view name, std::string_view help, std::vector<Source> sources) {
    add(prometheus::BuildGauge(), name, help, std::move(sources), gauges);
  }

  // Families of one series each.
  struct Single {
    std::string_view name;
    std::string_view help;
    Read read;
  };
  void counters_of_one(std::initializer_list<Single> singles) {
    for (const Single& s : singles) counter(s.name, s.help, {{{}, s.read}});
  }
  void gauges_of_one(std::initializer_list<Single> singles) {
    for (const Single& s : singles) gauge(s.name, s.help, {{{}, s.read}});
  }

  void add_connections() {
    gauge("connections", "Device connections open now, by state.",
          {{{{"state", "handshake"}}, worker<&WorkerTotals::handshaking>()},
           {{{"state", "awaiting_login"}}, worker<&WorkerTotals::awaiting_login>()},
           {{{"state", "live"}}, worker<&WorkerTotals::live>()}});
    counter("logins_total", "Devices logged in.", {{{}, worker<&WorkerTotals::logins>()}});
    counter("rejections_total",
            "Connections closed because the device broke a rule, by reason code.", closes(true));
    counter("closes_total",
            "Connections closed for other reasons (timeouts, the peer left, shutdown), by "
            "reason code.",
            closes(false));
    counter("tls_handshake_failures_total",
            "TLS handshakes that failed or timed out (closes tls_failed and handshake_timeout).",
            {{{}, tls_handshake_failures}});
  }

  void add_traffic() {
    counters_of_one(
        {{"frames_in_total", "IOT/1.1 frames accepted from devices.",
          worker<&WorkerTotals::frames_in>()},
         {"frames_out_total", "Push frames written to devices.",
          worker<&WorkerTotals::frames_out>()},
         {"bytes_in_total", "IOT/1.1 bytes read from devices (inside TLS).",
          worker<&WorkerTotals::bytes_in>()},
         {"bytes_out_total", "IOT/1.1 bytes written to devices (inside TLS).",
          worker<&WorkerTotals::bytes_out>()}});
    gauges_of_one(
        {{"spool_bytes", "Inbound records in the disk spool, waiting for the backend.",
          worker<&WorkerTotals::spool_bytes>()},
         {"inbound_memory_bytes",
          "Inbound records held in the workers' memory, waiting for the FIFO or the spool.",
          worker<&WorkerTotals::memory_bytes>()},
         {"inbound_paused_connections",
          "Device connections not read now because the inbound sink has no room "
          "(back-pressure: the FIFO and the spool take no more).",
          worker<&WorkerTotals::paused>()}});
    counters_of_one({{"inbound_backpressure_seconds_total",
                      "Seconds workers did not read some devices because the inbound sink had "
                      "no room, summed over workers.",
                      [](const Snapshot& s) { return static_cast<double>(s.workers.backpressure_ms) / 1000.0; }}});
  }

  void add_pushes() {
    counters_of_one(
        {{"pushes_routed_total", "Pushes handed to the worker holding the device.",
          master<&MasterTotals::pushes_routed>()},
         {"pushes_queued_total", "Pushes stored for an offline device.",
          master<&MasterTotals::pushes_queued>()},
         {"pushes_expired_total", "Queued pushes dropped after push.offline_max_age.",
          master<&MasterTotals::pushes_expired>()},
         {"pushes_evicted_total", "Queued pushes dropped beyond push.offline_max per device.",
          master<&MasterTotals::pushes_evicted>()},
         {"pushes_refused_total",
          "Pushes refused: the device is not in the registry, or push.offline_max is 0.",
          master<&MasterTotals::pushes_refused>()}});
    gauges_of_one({{"offline_queue_pushes", "Pushes waiting in the offline queue.",
                    master<&MasterTotals::offline_queued>()}});
  }

  void add_processes() {
    counters_of_one({{"worker_restarts_total", "Workers that died and were replaced.",
                      master<&MasterTotals::worker_restarts>()}});
    gauges_of_one({{"workers", "Worker processes configured.", master<&MasterTotals::workers>()},
                   {"workers_ready", "Worker processes running and ready.",
                    master<&MasterTotals::workers_ready>()}});
    counter("accept_refusals_total",
            "Connections closed at accept, before any TLS work, by the cap they hit "
            "(workers_behind: shed while every worker had handshakes waiting).",
            {{{{"cap", "max_connections"}}, master<&MasterTotals::refused_max_connections>()},
             {{{"cap", "per_ip"}}, master<&MasterTotals::refused_per_ip>()},
             {{{"cap", "workers_behind"}}, master<&MasterTotals::refused_workers_behind>()}});
    // No series yet: a family without one is not served (set_certificate adds it).
    certificate_family =
        &prometheus::BuildGauge()
             .Name("iotsocket_certificate_expiry_timestamp_seconds")
             .Help("When the served certificate expires (notAfter), in unix seconds.")
             .Register(registry);
  }

  void set(const Snapshot& snapshot) {
    for (auto& [counter, read] : counters) {
      // The library's counters only add; the snapshot holds totals.
      const double value = read(snapshot);
      if (value > counter->Value()) counter->Increment(value - counter->Value());
    }
    for (auto& [gauge, read] : gauges) gauge->Set(read(snapshot));
    set_certificate(snapshot.master.certificate_not_after);
  }

  void set_certificate(std::optional<std::int64_t> not_after) {
    if (!not_after) {
      if (certificate != nullptr) certificate_family->Remove(certificate);
      certificate = nullptr;
      return;
    }
    if (certificate == nullptr) certificate = &certificate_family->Add({});
    certificate->Set(static_cast<double>(*not_after));
  }
};

Families::Families() : series_(std::make_unique<Series>()) {}
Families::Families(Families&&) noexcept = default;
Families& Families::operator=(Families&&) noexcept = default;
Families::~Families() = default;

std::string Families::render(const Snapshot& snapshot) {
  series_->set(snapshot);
  return prometheus::TextSerializer().Serialize(series_->registry.Collect());
}

}  // namespace iotsocket::master::metrics
