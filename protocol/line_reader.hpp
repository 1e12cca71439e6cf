// Cuts a FIFO byte stream into lines of bounded length. A line longer than the bound is
// reported once as too_long and its bytes are dropped up to its '\n', so a backend that
// writes garbage costs a log line, not memory, and the records after it still arrive.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "protocol/limits.hpp"

namespace iotsocket::protocol {

// The longest line a valid record can be: a device ID with some leading zeros, a space,
// and a maximal payload with every byte escaped.
inline constexpr std::size_t kMaxRecordLine = 32 + 2 * (kMaxBody + 1);

enum class LineStatus { line, need_more, too_long };

struct NextLine {
  LineStatus status = LineStatus::need_more;
  std::string_view text;  // when status == line: the line without its '\n'
};

class LineReader {
 public:
  explicit LineReader(std::size_t max_line = kMaxRecordLine) noexcept : max_line_(max_line) {}

  // Appends bytes. Invalidates the view of the last line returned by next().
  void feed(std::string_view bytes);

  NextLine next() noexcept;

  // Bytes of an unfinished line (what is lost if the stream ends here).
  std::size_t pending() const noexcept { return buffer_.size() - begin_; }

 private:
  void compact() noexcept;

  std::size_t max_line_;
  std::string buffer_;
  std::size_t begin_ = 0;
  bool skipping_ = false;  // inside a too-long line: drop bytes up to its '\n'
};

}  // namespace iotsocket::protocol
