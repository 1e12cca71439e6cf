// Gathers the metrics endpoint's snapshot: the workers' counters summed from shared memory,
// and the served certificate's expiry. The master adds what it counts itself.
#pragma once

#include <openssl/ssl.h>

#include <cstdint>
#include <optional>

#include "master/metrics_text.hpp"
#include "shm/device_table.hpp"

namespace iotsocket::master::metrics {

// Sums every worker's counters (the gauges of a worker that died are zero: the master
// cleared them). The spool is shared by the workers: the largest size any of them saw.
WorkerTotals sum_workers(const shm::DeviceTable& table);

// notAfter of the context's certificate, in unix seconds; none when there is none.
std::optional<std::int64_t> certificate_not_after(SSL_CTX* ctx);

}  // namespace iotsocket::master::metrics
