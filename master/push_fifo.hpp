// The push FIFO as the master reads it: `ID payload` records (docs/PROTOCOL.md "The backend
// side") from backends that come and go. The FIFO is opened read-write, so that it never
// reads EOF when the last backend closes it and a new backend can open it at any time
// without the server reopening anything.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <string_view>

#include "common/expected.hpp"
#include "common/fd.hpp"
#include "master/push_source.hpp"
#include "protocol/line_reader.hpp"
#include "protocol/record.hpp"

namespace iotsocket::master {

class PushFifo final : public PushSource {
 public:
  // Opens an existing FIFO, non-blocking. Errors name the path.
  static Expected<PushFifo, std::string> open(const std::string& path);

  int fd() const noexcept override { return fd_.get(); }
  const std::string& name() const noexcept override { return path_; }
  const std::string& path() const noexcept { return path_; }

  bool read_available(std::size_t budget, const OnRecord& on_record, const OnBad& on_bad) override;

 private:
  PushFifo(std::string path, Fd fd) : path_(std::move(path)), fd_(std::move(fd)) {}
  std::string path_;
  Fd fd_;
  protocol::LineReader lines_;
};

}  // namespace iotsocket::master
