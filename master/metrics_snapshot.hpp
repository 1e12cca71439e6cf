// The served certificate's expiry, for the metrics endpoint's snapshot (the workers'
// counters are summed by shm::sum_workers; the master adds what it counts itself).
#pragma once

#include <openssl/ssl.h>

#include <cstdint>
#include <optional>

namespace iotsocket::master::metrics {

// notAfter of the context's certificate, in unix seconds; none when there is none.
std::optional<std::int64_t> certificate_not_after(SSL_CTX* ctx);

}  // namespace iotsocket::master::metrics
