#include "master/metrics_snapshot.hpp"

#include <openssl/x509.h>

#include <algorithm>
#include <ctime>

namespace iotsocket::master::metrics {

WorkerTotals sum_workers(const shm::DeviceTable& table) {
  using C = shm::WorkerCounters;
  WorkerTotals t;
  std::uint64_t connections = 0;
  for (std::uint32_t w = 0; w < table.workers(); ++w) {
    const C& c = table.counters(w);
    connections += C::get(c.connections);
    t.handshaking += C::get(c.handshaking);
    t.live += C::get(c.devices);
    t.logins += C::get(c.logins);
    t.frames_in += C::get(c.frames_in);
    t.frames_out += C::get(c.pushes_out);
    t.bytes_in += C::get(c.bytes_in);
    t.bytes_out += C::get(c.bytes_out);
    t.spool_bytes = std::max(t.spool_bytes, C::get(c.spool_bytes));
    t.memory_bytes += C::get(c.memory_bytes);
    for (std::size_t r = 0; r < shm::kCloseReasonCount; ++r) t.closes[r] += C::get(c.closes[r]);
  }
  // The three are read one after another while workers change them: never below zero.
  const std::uint64_t known = t.handshaking + t.live;
  t.awaiting_login = connections > known ? connections - known : 0;
  return t;
}

std::optional<std::int64_t> certificate_not_after(SSL_CTX* ctx) {
  if (ctx == nullptr) return std::nullopt;
  X509* cert = SSL_CTX_get0_certificate(ctx);
  if (cert == nullptr) return std::nullopt;
  std::tm tm{};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) != 1) return std::nullopt;
  return static_cast<std::int64_t>(::timegm(&tm));
}

}  // namespace iotsocket::master::metrics
