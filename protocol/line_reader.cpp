#include "protocol/line_reader.hpp"

namespace iotsocket::protocol {

void LineReader::feed(std::string_view bytes) {
  compact();
  buffer_.append(bytes);
}

NextLine LineReader::next() noexcept {
  while (true) {
    const std::string_view data = std::string_view(buffer_).substr(begin_);
    const auto newline = data.find('\n');
    if (skipping_) {
      if (newline == std::string_view::npos) {
        begin_ = buffer_.size();  // still inside the long line: drop what came
        return {};
      }
      skipping_ = false;
      begin_ += newline + 1;
      continue;
    }
    if (newline == std::string_view::npos) {
      if (data.size() <= max_line_) return {};
      skipping_ = true;
      begin_ = buffer_.size();
      return {.status = LineStatus::too_long};
    }
    begin_ += newline + 1;
    if (newline > max_line_) return {.status = LineStatus::too_long};
    return {.status = LineStatus::line, .text = data.substr(0, newline)};
  }
}

void LineReader::compact() noexcept {
  buffer_.erase(0, begin_);
  begin_ = 0;
}

}  // namespace iotsocket::protocol
