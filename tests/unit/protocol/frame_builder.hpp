// Builds frame bytes for tests: the legacy client's exact layout by default, with every
// part replaceable so that a test can break exactly one rule.
#pragma once

#include <string>
#include <vector>

namespace iotsocket::protocol::test {

// The bytes docs/PROTOCOL.md quotes from the legacy client and the legacy server.
inline const std::string kLegacyClientFrame =
    "IOT:1.1\r\nDATE:12/12/2019\r\nTIME:1795571767.0581\r\nDEVICE:1234567890\r\n"
    "KEY:1432qrzd23\r\n\r\n\r\ntemp=33.5&humid=40%|#|";
inline const std::string kLegacyPushFrame =
    "\r\nIOT:1.1\r\nDATE:24/7/2019\r\nTIME:1795571771.1903\r\nDEVICE:123456789\r\n"
    "KEY:AJ\r\n        \r\n\r\nhello-device|#|";

inline constexpr const char* kLegacyTime = "1795571767.0581";

struct FrameBuilder {
  std::vector<std::string> headers{"IOT:1.1", "DATE:12/12/2019", std::string("TIME:") + kLegacyTime,
                                   "DEVICE:1234567890", "KEY:1432qrzd23"};
  std::string separator = "\r\n\r\n\r\n";  // the legacy client's extra CRLF
  std::string body = "temp=33.5&humid=40%";

  // The frame without its delimiter: what parse_frame() takes.
  std::string content() const {
    std::string out;
    for (std::size_t i = 0; i < headers.size(); ++i) {
      if (i > 0) out += "\r\n";
      out += headers[i];
    }
    return out + separator + body;
  }
  std::string bytes() const { return content() + "|#|"; }

  FrameBuilder& set(std::size_t index, std::string line) {
    headers.at(index) = std::move(line);
    return *this;
  }
  FrameBuilder& with_body(std::string b) {
    body = std::move(b);
    return *this;
  }
  FrameBuilder& with_time(const std::string& t) { return set(2, "TIME:" + t); }
  FrameBuilder& with_device(const std::string& d) { return set(3, "DEVICE:" + d); }
  FrameBuilder& with_key(const std::string& k) { return set(4, "KEY:" + k); }
};

// A valid frame of exactly `size` bytes without its delimiter, body "hello": the whitespace
// after the body counts toward the frame but not toward the body.
inline std::string content_of(std::size_t size) {
  FrameBuilder b;
  const std::size_t fixed = b.with_body("").content().size();
  return b.with_body("hello" + std::string(size - fixed - 5, ' ')).content();
}

}  // namespace iotsocket::protocol::test
