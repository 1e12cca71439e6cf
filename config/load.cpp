// The public entry points: file → text → YAML → Config. yaml-cpp throws; this is the
// boundary where its exceptions become ConfigErrors.
#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>
#include <thread>

#include "common/log_text.hpp"
#include "config/config.hpp"
#include "config/reader.hpp"
#include "config/schema.hpp"
#include "config/server_files.hpp"

namespace iotsocket::config {
namespace {

Unexpected<std::vector<ConfigError>> one_error(ConfigError error) {
  return Unexpected<std::vector<ConfigError>>{{std::move(error)}};
}

Expected<std::string, std::string> read_text(const std::string& path) {
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (ec) return Unexpected<std::string>{"cannot read the config file: " + ec.message()};
  if (std::filesystem::is_directory(status)) {
    return Unexpected<std::string>{"cannot read the config file: it is a directory"};
  }
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Unexpected<std::string>{"cannot read the config file: " +
                                   std::generic_category().message(errno)};
  }
  std::string text{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  if (in.bad()) return Unexpected<std::string>{"cannot read the config file: read error"};
  return text;
}

LoadResult load_document(const std::vector<YAML::Node>& documents, const std::string& name,
                         const std::string& base_dir, FileChecks checks) {
  if (documents.empty() || (documents.size() == 1 && documents[0].IsNull())) {
    return one_error({name, 0, 0, "",
                      "empty config; expected a mapping of settings "
                      "(listen, tls, workers, ...)"});
  }
  Reader reader(name, base_dir);
  if (documents.size() > 1) {
    reader.error(where_of("", documents[1].Mark()),
                 "a second YAML document ('---'); a config file holds one");
  }
  Config config = read_config(reader, documents[0]);
  config.path = name;
  check_config(reader, config);
  // On disk only once the file is right: a key refused above would be checked at its default.
  if (checks == FileChecks::server && !reader.failed()) check_server_files(reader, config);
  if (reader.failed()) return Unexpected<std::vector<ConfigError>>{reader.take_errors()};
  return config;
}

}  // namespace

std::string ConfigError::to_string() const {
  std::string out = file;
  if (line > 0) out += ":" + std::to_string(line) + ":" + std::to_string(column);
  out += ": ";
  if (!key.empty()) out += key + ": ";
  // One line whatever the file holds: a value quoted in the message may hold a line break
  // or a terminal's escape (the file's owner wrote it, but it must not forge other lines).
  out += message;
  return printable(out, out.size());
}

LoadResult load_string(const std::string& text, const std::string& name,
                       const std::string& base_dir, FileChecks checks) {
  try {
    return load_document(YAML::LoadAll(text), name, base_dir, checks);
  } catch (const YAML::Exception& e) {
    // A syntax error (ParserException) or anything else yaml-cpp throws while we walk.
    const Where where = where_of("", e.mark);
    return one_error({name, where.line, where.column, "", "invalid YAML: " + e.msg});
  }
}

LoadResult load_file(const std::string& path, FileChecks checks) {
  auto text = read_text(path);
  if (!text) return one_error({path, 0, 0, "", text.error()});
  std::string dir = std::filesystem::path(path).parent_path().string();
  return load_string(*text, path, dir.empty() ? "." : dir, checks);
}

unsigned effective_workers(const Config& config) {
  if (config.workers != 0) return config.workers;
  return std::max(1u, std::thread::hardware_concurrency());
}

std::string offline_db_path(const Config& config) {
  if (!config.push.offline_db.empty()) return config.push.offline_db;
  return (std::filesystem::path(config.devices.sqlite).parent_path() / "offline-push.db").string();
}

}  // namespace iotsocket::config
