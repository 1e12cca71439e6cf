// Latency percentiles for the report. Pure.
#pragma once

#include <cstdint>
#include <vector>

namespace iotsocket::bench {

// Nearest-rank percentile (the smallest sample with at least p% of the samples at or
// below it) of samples sorted ascending; p in (0, 100]. 0 for no samples.
std::uint64_t percentile(const std::vector<std::uint64_t>& sorted, double p);

struct LatencySummary {
  std::uint64_t count = 0;
  std::uint64_t p50 = 0, p90 = 0, p99 = 0, max = 0;  // microseconds
};

LatencySummary summarize(std::vector<std::uint64_t> samples);

}  // namespace iotsocket::bench
