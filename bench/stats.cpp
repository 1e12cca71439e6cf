#include "bench/stats.hpp"

#include <algorithm>
#include <cmath>

namespace iotsocket::bench {

std::uint64_t percentile(const std::vector<std::uint64_t>& sorted, double p) {
  if (sorted.empty()) return 0;
  const double n = static_cast<double>(sorted.size());
  // Rank 1..n; the epsilon keeps 90% of 10 samples at rank 9 despite rounding in p/100*n.
  auto rank = static_cast<std::size_t>(std::ceil(p / 100.0 * n - 1e-9));
  rank = std::clamp<std::size_t>(rank, 1, sorted.size());
  return sorted[rank - 1];
}

LatencySummary summarize(std::vector<std::uint64_t> samples) {
  std::sort(samples.begin(), samples.end());
  LatencySummary s;
  s.count = samples.size();
  s.p50 = percentile(samples, 50);
  s.p90 = percentile(samples, 90);
  s.p99 = percentile(samples, 99);
  s.max = samples.empty() ? 0 : samples.back();
  return s;
}

}  // namespace iotsocket::bench
