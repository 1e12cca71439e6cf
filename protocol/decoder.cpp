#include "protocol/decoder.hpp"

#include <algorithm>

#include "protocol/limits.hpp"

namespace iotsocket::protocol {
namespace {

// A buffer grown beyond this by a large frame is given back once it runs empty; below it,
// keeping the allocation saves a malloc per read on a busy connection.
constexpr std::size_t kRetainedCapacity = 4096;

}  // namespace

void Decoder::feed(std::string_view bytes) {
  if (error_) return;  // a failed stream is about to be closed: keep nothing more
  compact();
  buffer_.append(bytes);
}

Decoded Decoder::next() noexcept {
  if (error_) return {.status = DecodeStatus::failed, .error = *error_};

  const std::string_view data(buffer_);
  while (true) {
    const auto at = data.find(kDelimiter, std::max(begin_, scanned_));
    if (at == std::string_view::npos) break;
    const std::string_view content = data.substr(begin_, at - begin_);
    begin_ = scanned_ = at + kDelimiter.size();
    if (content.empty()) continue;  // rule 1: empty pieces are ignored

    auto frame = parse_frame(content, direction_);
    if (!frame) return fail(frame.error());
    return {.status = DecodeStatus::frame, .frame = *frame};
  }

  // A delimiter may already have begun in the last two bytes; rescan only those next time.
  scanned_ = std::max(begin_, data.size() - std::min(data.size(), kDelimiter.size() - 1));
  // Even if the next byte completes a delimiter, the frame would be too large.
  if (buffered() >= kMaxFrameBytes) return fail(FrameError::frame_too_large);
  compact();  // no view is outstanding now, so an idle stream can give its memory back
  return {.status = DecodeStatus::need_more};
}

Decoded Decoder::fail(FrameError error) noexcept {
  error_ = error;
  std::string{}.swap(buffer_);
  begin_ = scanned_ = 0;
  return {.status = DecodeStatus::failed, .error = error};
}

// Drops consumed bytes so the buffer holds at most one partial frame.
void Decoder::compact() noexcept {
  if (begin_ == 0) return;
  buffer_.erase(0, begin_);
  scanned_ -= begin_;
  begin_ = 0;
  if (buffer_.empty() && buffer_.capacity() > kRetainedCapacity) std::string{}.swap(buffer_);
}

}  // namespace iotsocket::protocol
