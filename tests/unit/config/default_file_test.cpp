// packaging/iotsocket.yaml, the commented default config the package installs: it must
// configure exactly the built-in defaults (so its comments tell the truth about an empty
// file too), and it must show every key of the schema in config/README.md.
#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <sstream>
#include <string>

#include "config/config.hpp"

namespace iotsocket::config {
namespace {

const std::string kDefaultFile = std::string(IOTSOCKET_SOURCE_DIR) + "/packaging/iotsocket.yaml";

std::string read(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

TEST(DefaultConfigFile, LoadsToExactlyTheBuiltInDefaults) {
  const auto loaded = load_file(kDefaultFile);
  ASSERT_TRUE(loaded) << loaded.error().front().to_string();
  Config expected;
  expected.path = loaded->path;
  EXPECT_TRUE(*loaded == expected) << "packaging/iotsocket.yaml and config.hpp disagree";
}

TEST(DefaultConfigFile, ShowsEveryKeyOfTheSchema) {
  const std::string text = read(kDefaultFile);
  const std::string whole = read(std::string(IOTSOCKET_SOURCE_DIR) + "/config/README.md");
  const auto schema_at = whole.find("## Schema");
  ASSERT_NE(schema_at, std::string::npos);
  const std::string readme = whole.substr(schema_at);
  // Rows of the schema table: | `timeouts.idle` | ...
  const std::regex row(R"(^\| `([a-z_.\[\]]+)` \|)", std::regex::multiline);
  std::size_t keys = 0;
  for (auto it = std::sregex_iterator(readme.begin(), readme.end(), row); it != std::sregex_iterator();
       ++it) {
    std::string key = (*it)[1];
    const std::string leaf = key.substr(key.find_last_of(".]") == std::string::npos
                                            ? 0
                                            : key.find_last_of(".]") + 1);
    ++keys;
    // The leaf key as a YAML key, set or commented out ("# offline_db: ...").
    const std::regex shown("(^|[\\s{,#])" + leaf + ":");
    EXPECT_TRUE(std::regex_search(text, shown)) << key << " is not in packaging/iotsocket.yaml";
  }
  EXPECT_GE(keys, 30u);  // the table was found and read
}

}  // namespace
}  // namespace iotsocket::config
