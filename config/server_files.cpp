#include "config/server_files.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <optional>
#include <string>

namespace iotsocket::config {
namespace {

namespace fs = std::filesystem;

std::string errno_text() { return std::strerror(errno); }

// What is wrong with `path` as a file the server reads (`what` names it), or nullopt.
std::optional<std::string> unreadable_file(const std::string& path, const std::string& what) {
  struct stat st{};
  if (::stat(path.c_str(), &st) != 0) return path + ": " + errno_text() + "; expected " + what;
  if (S_ISDIR(st.st_mode)) return path + " is a directory; expected " + what;
  if (!S_ISREG(st.st_mode)) return path + " is not a regular file; expected " + what;
  if (::access(path.c_str(), R_OK) != 0) return "cannot read " + path + ": " + errno_text();
  return std::nullopt;
}

// The nearest of `path` and its parents that exists ("/" at the latest). A relative path
// is taken from the working directory (whose parents a relative path would not reach).
fs::path nearest_existing(fs::path path) {
  std::error_code ec;
  if (path.is_relative()) path = fs::absolute(path, ec);
  while (path.has_relative_path() && !fs::exists(path, ec)) path = path.parent_path();
  return path;
}

// What is wrong with `dir` as a directory the server writes in (made when missing), or
// nullopt. (As root, which can write anywhere, only the file type can be wrong.)
std::optional<std::string> unwritable_dir(const std::string& dir) {
  constexpr std::string_view kExpected = "; expected a directory the server can write in";
  const fs::path existing = nearest_existing(dir);
  std::error_code ec;
  const bool exists_itself = existing == fs::absolute(fs::path(dir), ec);
  if (!fs::is_directory(existing, ec)) {
    if (exists_itself) return dir + " is not a directory" + std::string(kExpected);
    return dir + " cannot be made: " + existing.string() + " is not a directory";
  }
  if (::access(existing.c_str(), W_OK | X_OK) != 0) {
    if (exists_itself) return "cannot write in " + dir + ": " + errno_text();
    return dir + " cannot be made in " + existing.string() + ": " + errno_text();
  }
  return std::nullopt;
}

void check_tls_files(Reader& r, const Tls& tls) {
  if (!tls.enabled) return;
  if (!tls.cert.empty()) {
    if (auto wrong = unreadable_file(tls.cert, "a PEM certificate chain file")) {
      r.error(r.locate("tls.cert"), *wrong);
    }
  }
  if (!tls.key.empty()) {
    if (auto wrong = unreadable_file(tls.key, "a PEM private key file")) r.error(r.locate("tls.key"), *wrong);
  }
}

}  // namespace

void check_server_files(Reader& r, const Config& c) {
  check_tls_files(r, c.tls);
  if (auto wrong = unwritable_dir(c.spool.dir)) r.error(r.locate("spool.dir"), *wrong);
}

}  // namespace iotsocket::config
