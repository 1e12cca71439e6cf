#include "common/log_text.hpp"

namespace iotsocket {
namespace {

bool is_plain(unsigned char byte) { return byte >= 0x20 && byte < 0x7f && byte != '\\'; }

void append_escaped_byte(std::string& out, unsigned char byte) {
  static constexpr char kHex[] = "0123456789abcdef";
  if (byte == '\\') {
    out += "\\\\";
    return;
  }
  out += "\\x";
  out += kHex[byte >> 4];
  out += kHex[byte & 0x0f];
}

}  // namespace

std::string printable(std::string_view text, std::size_t max) {
  const std::string_view shown = text.substr(0, max);
  std::string out;
  out.reserve(shown.size() + 16);
  for (const char c : shown) {
    const auto byte = static_cast<unsigned char>(c);
    if (is_plain(byte)) {
      out += c;
    } else {
      append_escaped_byte(out, byte);
    }
  }
  if (shown.size() < text.size()) {
    out += "...[" + std::to_string(text.size() - shown.size()) + " more bytes]";
  }
  return out;
}

}  // namespace iotsocket
