// The push FIFO as the master reads it: `ID payload` records (docs/PROTOCOL.md "The backend
// side") from backends that come and go. The FIFO is opened read-write, so that it never
// reads EOF when the last backend closes it and a new backend can open it at any time
// without the server reopening anything.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

#include "common/fd.hpp"
#include "common/expected.hpp"
#include "protocol/line_reader.hpp"
#include "protocol/record.hpp"

namespace iotsocket::master {

class PushFifo {
 public:
  using OnRecord = std::function<void(protocol::Record record)>;
  // A line that is not a valid record: why, and the start of the line for the log.
  using OnBad = std::function<void(std::string_view reason, std::string_view line)>;

  // Opens an existing FIFO, non-blocking. Errors name the path.
  static Expected<PushFifo, std::string> open(const std::string& path);

  int fd() const noexcept { return fd_.get(); }
  const std::string& path() const noexcept { return path_; }

  // Reads what is available, at most about `budget` bytes (the loop stays fair to the
  // other work), and calls on_record / on_bad for each complete line. Returns false on a
  // read error (logged by the caller through errno), true otherwise.
  bool read_available(std::size_t budget, const OnRecord& on_record, const OnBad& on_bad);

 private:
  PushFifo(std::string path, Fd fd) : path_(std::move(path)), fd_(std::move(fd)) {}
  std::string path_;
  Fd fd_;
  protocol::LineReader lines_;
};

}  // namespace iotsocket::master
