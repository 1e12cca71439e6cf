// The streaming side of rule 1: bytes arrive in any split, frames come out whole.
//
//   Decoder decoder(Direction::from_device);
//   decoder.feed(bytes_just_read);
//   for (auto d = decoder.next(); d.status == DecodeStatus::frame; d = decoder.next()) {...}
//
// After an error the decoder stays failed (the connection is to be closed) and returns the
// same error from every later next(). Memory is bounded: it never buffers more than one
// maximal frame, and gives its buffer back when it runs empty after a large frame, so an
// idle connection costs only the object itself.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

#include "protocol/frame.hpp"

namespace iotsocket::protocol {

// Would-need-more-bytes is a value, not an error.
enum class DecodeStatus { frame, need_more, failed };

struct Decoded {
  DecodeStatus status = DecodeStatus::need_more;
  FrameView frame{};                            // when status == frame
  FrameError error = FrameError::frame_too_large;  // when status == failed
};

class Decoder {
 public:
  explicit Decoder(Direction direction) noexcept : direction_(direction) {}

  // Appends bytes. Invalidates the views of the last frame returned by next().
  void feed(std::string_view bytes);

  // The next whole frame, need_more, or the error that ends this stream.
  Decoded next() noexcept;

  // Bytes received but not yet returned as frames.
  std::size_t buffered() const noexcept { return buffer_.size() - begin_; }
  bool failed() const noexcept { return error_.has_value(); }
  // Heap bytes held, for per-connection memory accounting (0 while the buffer still fits
  // in the string object itself).
  std::size_t allocated() const noexcept {
    return buffer_.capacity() > std::string().capacity() ? buffer_.capacity() : 0;
  }

 private:
  Decoded fail(FrameError error) noexcept;
  void compact() noexcept;  // erase() of a prefix never allocates

  Direction direction_;
  std::string buffer_;
  std::size_t begin_ = 0;    // first byte not yet consumed
  std::size_t scanned_ = 0;  // no delimiter starts in [begin_, scanned_)
  std::optional<FrameError> error_;
};

}  // namespace iotsocket::protocol
