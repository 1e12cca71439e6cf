#include "common/fifo_writer.hpp"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>

namespace iotsocket {
namespace {
constexpr int kWantedPipeSize = 1 << 20;
}  // namespace

Expected<Fd, int> open_fifo_writer(const std::string& path) noexcept {
  Fd opened(::open(path.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC));
  if (!opened) return Unexpected{errno};
  struct stat st {};
  if (::fstat(opened.get(), &st) != 0 || !S_ISFIFO(st.st_mode)) return Unexpected{ENOTSUP};
  (void)::fcntl(opened.get(), F_SETPIPE_SZ, kWantedPipeSize);
  return opened;
}

}  // namespace iotsocket
