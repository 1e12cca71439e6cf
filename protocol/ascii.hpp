// ASCII classification and stripping as docs/PROTOCOL.md defines them. Locale-independent on
// purpose: <cctype> would follow the process locale, and the wire format does not.
#pragma once

#include <string_view>

namespace iotsocket::protocol {

constexpr bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

// The whitespace of rule 3: space, \t, \n, \v, \f and \r, nothing else.
constexpr bool is_space(char c) noexcept { return c == ' ' || (c >= '\t' && c <= '\r'); }

constexpr bool all_digits(std::string_view s) noexcept {
  for (char c : s) {
    if (!is_digit(c)) return false;
  }
  return !s.empty();
}

constexpr std::string_view strip(std::string_view s) noexcept {
  while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
  while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
  return s;
}

}  // namespace iotsocket::protocol
