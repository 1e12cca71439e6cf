// The body of each frame the bench sends: exactly the requested size, the same bytes for
// the same (sequence, size) in every run, and valid as sent (no whitespace at either end,
// which the receiver would strip; no delimiter).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace iotsocket::bench {

// "n=<seq>;" followed by a repeating a-z pattern, cut to `bytes`.
std::string make_payload(std::uint64_t seq, std::size_t bytes);

}  // namespace iotsocket::bench
