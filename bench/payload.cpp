#include "bench/payload.hpp"

namespace iotsocket::bench {

std::string make_payload(std::uint64_t seq, std::size_t bytes) {
  std::string p = "n=" + std::to_string(seq) + ";";
  p.reserve(bytes);
  for (std::size_t i = 0; p.size() < bytes; ++i) p.push_back(static_cast<char>('a' + i % 26));
  p.resize(bytes);
  return p;
}

}  // namespace iotsocket::bench
