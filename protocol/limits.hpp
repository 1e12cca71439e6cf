// IOT/1.1 size limits and fixed bytes, from docs/PROTOCOL.md ("Frame", rules 10 and 11).
#pragma once

#include <cstddef>
#include <string_view>

namespace iotsocket::protocol {

// Ends every frame; senders delete it from bodies (rule 11).
inline constexpr std::string_view kDelimiter = "|#|";
// Separates the header block from the body (rule 2).
inline constexpr std::string_view kBlankLine = "\r\n\r\n";
inline constexpr std::string_view kCrlf = "\r\n";

// A whole frame, delimiter included, is at most this many bytes (rule 10).
inline constexpr std::size_t kMaxFrameBytes = 65535;
// So the bytes between two delimiters are at most this many.
inline constexpr std::size_t kMaxFrameContent = kMaxFrameBytes - kDelimiter.size();
// The header block is measured as received, before stripping, as the legacy server did.
inline constexpr std::size_t kMaxHeaderBlock = 1023;
// The body is measured after stripping: at least 5 and less than 62535 bytes.
inline constexpr std::size_t kMinBody = 5;
inline constexpr std::size_t kMaxBody = 62534;
// Our own bound on a KEY we write, far below what fits in a header block, so that an
// encoded frame can never exceed kMaxHeaderBlock.
inline constexpr std::size_t kMaxKeyBytes = 512;

}  // namespace iotsocket::protocol
