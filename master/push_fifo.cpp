#include "master/push_fifo.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "protocol/errors.hpp"

namespace iotsocket::master {
namespace {

constexpr std::size_t kReadChunk = 64 * 1024;

}  // namespace

Expected<PushFifo, std::string> PushFifo::open(const std::string& path) {
  // O_RDWR: we are a writer too, so the FIFO never reads EOF between backends (Linux
  // allows this on a FIFO; POSIX leaves it undefined).
  Fd fd(::open(path.c_str(), O_RDWR | O_NONBLOCK | O_CLOEXEC));
  if (!fd) return Unexpected{"fifo.push: cannot open " + path + ": " + std::strerror(errno)};
  struct stat st{};
  if (::fstat(fd.get(), &st) != 0 || !S_ISFIFO(st.st_mode)) {
    return Unexpected{"fifo.push: " + path + " is not a FIFO"};
  }
  return PushFifo(path, std::move(fd));
}

bool PushFifo::read_available(std::size_t budget, const OnRecord& on_record, const OnBad& on_bad) {
  char buf[kReadChunk];
  std::size_t taken = 0;
  bool ok = true;
  while (taken < budget) {
    const ssize_t n = ::read(fd_.get(), buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      ok = errno == EAGAIN;
      break;
    }
    if (n == 0) break;  // cannot happen while we hold a write end; harmless
    taken += static_cast<std::size_t>(n);
    lines_.feed(std::string_view(buf, static_cast<std::size_t>(n)));
    for (;;) {
      const protocol::NextLine next = lines_.next();
      if (next.status == protocol::LineStatus::need_more) break;
      if (next.status == protocol::LineStatus::too_long) {
        on_bad("line_too_long", {});
        continue;
      }
      auto record = protocol::parse_record(next.text);
      if (!record) {
        on_bad(protocol::name(record.error()), next.text);
        continue;
      }
      on_record(std::move(*record));
    }
    if (static_cast<std::size_t>(n) < sizeof buf) break;
  }
  return ok;
}

}  // namespace iotsocket::master
