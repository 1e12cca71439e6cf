#include "master/metrics_text.hpp"

#include <initializer_list>

#include <fmt/format.h>

namespace iotsocket::master::metrics {
namespace {

// One metric family: its header once, then its samples.
class Writer {
 public:
  explicit Writer(std::string& out) : out_(out) {}

  Writer& family(std::string_view name, std::string_view type, std::string_view help) {
    name_ = name;
    fmt::format_to(std::back_inserter(out_), "# HELP iotsocket_{} {}\n# TYPE iotsocket_{} {}\n",
                   name, help, name, type);
    return *this;
  }
  Writer& sample(std::uint64_t value) { return labelled({}, {}, value); }
  Writer& labelled(std::string_view label, std::string_view label_value, std::uint64_t value) {
    fmt::format_to(std::back_inserter(out_), "iotsocket_{}", name_);
    if (!label.empty()) {
      fmt::format_to(std::back_inserter(out_), "{{{}=\"{}\"}}", label,
                     escape_label_value(label_value));
    }
    fmt::format_to(std::back_inserter(out_), " {}\n", value);
    return *this;
  }
  Writer& signed_sample(std::int64_t value) {
    fmt::format_to(std::back_inserter(out_), "iotsocket_{} {}\n", name_, value);
    return *this;
  }

 private:
  std::string& out_;
  std::string_view name_;
};

std::uint64_t closes_of(const WorkerTotals& w, std::string_view reason) {
  return w.closes[shm::close_reason_index(reason)];
}

void render_connections(Writer& out, const WorkerTotals& w) {
  out.family("connections", "gauge", "Device connections open now, by state.")
      .labelled("state", "handshake", w.handshaking)
      .labelled("state", "awaiting_login", w.awaiting_login)
      .labelled("state", "live", w.live);
  out.family("logins_total", "counter", "Devices logged in.").sample(w.logins);
  // Every reason is listed, also at zero, so that a series exists before its first event.
  out.family("rejections_total", "counter",
             "Connections closed because the device broke a rule, by reason code.");
  for (std::size_t i = 0; i < shm::kCloseReasonCount; ++i) {
    if (shm::kCloseReasons[i].rejection) out.labelled("reason", shm::kCloseReasons[i].name, w.closes[i]);
  }
  out.family("closes_total", "counter",
             "Connections closed for other reasons (timeouts, the peer left, shutdown), by "
             "reason code.");
  for (std::size_t i = 0; i < shm::kCloseReasonCount; ++i) {
    if (!shm::kCloseReasons[i].rejection) out.labelled("reason", shm::kCloseReasons[i].name, w.closes[i]);
  }
  out.family("tls_handshake_failures_total", "counter",
             "TLS handshakes that failed or timed out (closes tls_failed and handshake_timeout).")
      .sample(closes_of(w, "tls_failed") + closes_of(w, "handshake_timeout"));
}

// A family of one unlabelled sample.
struct Single {
  std::string_view name;
  std::string_view type;
  std::string_view help;
  std::uint64_t value;
};

void render_singles(Writer& out, std::initializer_list<Single> singles) {
  for (const Single& s : singles) out.family(s.name, s.type, s.help).sample(s.value);
}

void render_traffic(Writer& out, const WorkerTotals& w) {
  render_singles(
      out,
      {{"frames_in_total", "counter", "IOT/1.1 frames accepted from devices.", w.frames_in},
       {"frames_out_total", "counter", "Push frames written to devices.", w.frames_out},
       {"bytes_in_total", "counter", "IOT/1.1 bytes read from devices (inside TLS).", w.bytes_in},
       {"bytes_out_total", "counter", "IOT/1.1 bytes written to devices (inside TLS).", w.bytes_out},
       {"spool_bytes", "gauge", "Inbound records in the disk spool, waiting for the backend.",
        w.spool_bytes},
       {"inbound_memory_bytes", "gauge",
        "Inbound records held in the workers' memory, waiting for the FIFO or the spool.",
        w.memory_bytes}});
}

void render_master(Writer& out, const MasterTotals& m) {
  render_singles(
      out,
      {{"pushes_routed_total", "counter", "Pushes handed to the worker holding the device.",
        m.pushes_routed},
       {"pushes_queued_total", "counter", "Pushes stored for an offline device.", m.pushes_queued},
       {"pushes_expired_total", "counter", "Queued pushes dropped after push.offline_max_age.",
        m.pushes_expired},
       {"pushes_evicted_total", "counter", "Queued pushes dropped beyond push.offline_max per device.",
        m.pushes_evicted},
       {"pushes_refused_total", "counter",
        "Pushes refused: the device is not in the registry, or push.offline_max is 0.",
        m.pushes_refused},
       {"offline_queue_pushes", "gauge", "Pushes waiting in the offline queue.", m.offline_queued},
       {"worker_restarts_total", "counter", "Workers that died and were replaced.",
        m.worker_restarts},
       {"workers", "gauge", "Worker processes configured.", m.workers},
       {"workers_ready", "gauge", "Worker processes running and ready.", m.workers_ready}});
  out.family("accept_refusals_total", "counter",
             "Connections closed at accept, before any TLS work, by the cap they hit.")
      .labelled("cap", "max_connections", m.refused_max_connections)
      .labelled("cap", "per_ip", m.refused_per_ip);
  if (m.certificate_not_after) {
    out.family("certificate_expiry_timestamp_seconds", "gauge",
               "When the served certificate expires (notAfter), in unix seconds.")
        .signed_sample(*m.certificate_not_after);
  }
}

}  // namespace

std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (const char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string render(const Snapshot& snapshot) {
  std::string text;
  text.reserve(8192);
  Writer out(text);
  render_connections(out, snapshot.workers);
  render_traffic(out, snapshot.workers);
  render_master(out, snapshot.master);
  return text;
}

}  // namespace iotsocket::master::metrics
