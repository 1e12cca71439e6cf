#include "master/metrics_snapshot.hpp"

#include <openssl/x509.h>

#include <ctime>

namespace iotsocket::master::metrics {

std::optional<std::int64_t> certificate_not_after(SSL_CTX* ctx) {
  if (ctx == nullptr) return std::nullopt;
  X509* cert = SSL_CTX_get0_certificate(ctx);
  if (cert == nullptr) return std::nullopt;
  std::tm tm{};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) != 1) return std::nullopt;
  return static_cast<std::int64_t>(::timegm(&tm));
}

}  // namespace iotsocket::master::metrics
