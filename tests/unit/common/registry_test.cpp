// DeviceRegistry against real SQLite files in a fresh temporary directory per test.
#include "common/registry.hpp"

#include <sqlite3.h>
#include <stdlib.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>

#include <gtest/gtest.h>

namespace iotsocket {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Mode = DeviceRegistry::Mode;

constexpr DeviceId kDevice{42};
constexpr std::string_view kKey = "legacy-Key_0123456789";

class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string pattern = (fs::temp_directory_path() / "registry_test.XXXXXX").string();
    ASSERT_NE(mkdtemp(pattern.data()), nullptr);
    dir_ = pattern;
    path_ = (dir_ / "devices.db").string();
  }
  void TearDown() override { fs::remove_all(dir_); }

  DeviceRegistry open(Mode mode = Mode::read_write) {
    auto registry = DeviceRegistry::open(path_, mode);
    if (!registry) ADD_FAILURE() << registry.error();
    return std::move(registry).value();
  }

  // One column of the device's row, read with plain SQLite, not through the registry.
  std::string column(DeviceId id, const char* name) {
    sqlite3* db = nullptr;
    EXPECT_EQ(sqlite3_open_v2(path_.c_str(), &db, SQLITE_OPEN_READONLY, nullptr), SQLITE_OK);
    const std::string sql = std::string("SELECT ") + name + " FROM devices WHERE id = " +
                            std::to_string(id.value);
    sqlite3_stmt* stmt = nullptr;
    EXPECT_EQ(sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    std::string value;
    if (sqlite3_step(stmt) == SQLITE_ROW) {
      const auto* bytes = static_cast<const char*>(sqlite3_column_blob(stmt, 0));
      value.assign(bytes != nullptr ? bytes : "", static_cast<std::size_t>(sqlite3_column_bytes(stmt, 0)));
    }
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return value;
  }

  // A database that the registry did not make.
  void make_plain_database(const char* sql) {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path_.c_str(), &db), SQLITE_OK);
    EXPECT_EQ(sqlite3_exec(db, sql, nullptr, nullptr, nullptr), SQLITE_OK) << sqlite3_errmsg(db);
    sqlite3_close(db);
  }

  // Every byte SQLite wrote: the database, its WAL and its shared-memory index.
  std::string all_file_bytes() {
    std::string bytes;
    for (const auto& entry : fs::directory_iterator(dir_)) {
      std::ifstream in(entry.path(), std::ios::binary);
      bytes.append(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    }
    return bytes;
  }

  fs::path dir_;
  std::string path_;
};

std::string add_ok(DeviceRegistry& registry, DeviceId id, std::optional<std::string> key) {
  auto added = registry.add(id, std::move(key));
  EXPECT_TRUE(added) << added.error();
  return added ? *added : std::string();
}

TEST_F(RegistryTest, GivenKeyVerifies) {
  auto registry = open();
  EXPECT_EQ(add_ok(registry, kDevice, std::string(kKey)), kKey);
  EXPECT_EQ(registry.verify(kDevice, kKey), LoginCheck::ok);
  EXPECT_EQ(column(kDevice, "kdf"), "pbkdf2-sha256:4096");
}

TEST_F(RegistryTest, GeneratedKeyVerifiesWithOneIteration) {
  auto registry = open();
  const std::string key = add_ok(registry, kDevice, std::nullopt);
  EXPECT_EQ(registry.verify(kDevice, key), LoginCheck::ok);
  EXPECT_EQ(column(kDevice, "kdf"), "pbkdf2-sha256:1");
}

TEST_F(RegistryTest, WrongKey) {
  auto registry = open();
  add_ok(registry, kDevice, std::string(kKey));
  EXPECT_EQ(registry.verify(kDevice, "legacy-Key_0123456788"), LoginCheck::wrong_key);
  EXPECT_EQ(registry.verify(kDevice, ""), LoginCheck::wrong_key);
  EXPECT_EQ(registry.verify(kDevice, std::string(kKey) + "x"), LoginCheck::wrong_key);
}

TEST_F(RegistryTest, UnknownDevice) {
  auto registry = open();
  add_ok(registry, kDevice, std::string(kKey));
  EXPECT_EQ(registry.verify(DeviceId{43}, kKey), LoginCheck::unknown_device);
}

TEST_F(RegistryTest, DisabledDeviceTellsOnlyTheRightKey) {
  auto registry = open();
  add_ok(registry, kDevice, std::string(kKey));
  ASSERT_TRUE(registry.set_enabled(kDevice, false));
  EXPECT_EQ(registry.verify(kDevice, kKey), LoginCheck::disabled);
  EXPECT_EQ(registry.verify(kDevice, "guess"), LoginCheck::wrong_key);
  auto info = registry.find(kDevice);
  ASSERT_TRUE(info && *info);
  EXPECT_FALSE((*info)->enabled);
}

TEST_F(RegistryTest, EnableAgain) {
  auto registry = open();
  add_ok(registry, kDevice, std::string(kKey));
  ASSERT_TRUE(registry.set_enabled(kDevice, false));
  ASSERT_TRUE(registry.set_enabled(kDevice, true));
  EXPECT_EQ(registry.verify(kDevice, kKey), LoginCheck::ok);
  ASSERT_TRUE(registry.set_enabled(kDevice, true));  // already enabled: still fine
}

TEST_F(RegistryTest, Remove) {
  auto registry = open();
  add_ok(registry, kDevice, std::string(kKey));
  ASSERT_TRUE(registry.remove(kDevice));
  EXPECT_EQ(registry.verify(kDevice, kKey), LoginCheck::unknown_device);
  auto info = registry.find(kDevice);
  ASSERT_TRUE(info);
  EXPECT_FALSE(*info);
}

TEST_F(RegistryTest, AbsentDeviceIsNamed) {
  auto registry = open();
  const auto removed = registry.remove(kDevice);
  ASSERT_FALSE(removed);
  EXPECT_EQ(removed.error(), "no device 0000000042");
  const auto enabled = registry.set_enabled(kDevice, true);
  ASSERT_FALSE(enabled);
  EXPECT_EQ(enabled.error(), "no device 0000000042");
}

TEST_F(RegistryTest, DuplicateAddKeepsTheFirstKey) {
  auto registry = open();
  add_ok(registry, kDevice, std::string(kKey));
  const auto again = registry.add(kDevice, std::string("other-key"));
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error(), "device 0000000042 already exists");
  const auto generated = registry.add(kDevice, std::nullopt);
  ASSERT_FALSE(generated);
  EXPECT_EQ(generated.error(), "device 0000000042 already exists");
  EXPECT_EQ(registry.verify(kDevice, kKey), LoginCheck::ok);
  EXPECT_EQ(registry.verify(kDevice, "other-key"), LoginCheck::wrong_key);
}

TEST_F(RegistryTest, RefusesKeysThatCannotBeSent) {
  auto registry = open();
  const std::vector<std::string> bad_keys{"",           "has space", "has:colon", "cut|#|here",
                                         "tab\there", "bell\a",    std::string(513, 'k')};
  for (const std::string& bad : bad_keys) {
    const auto added = registry.add(kDevice, bad);
    ASSERT_FALSE(added) << bad;
    EXPECT_NE(added.error().find("a key must be 1 to 512 printable ASCII"), std::string::npos);
  }
  add_ok(registry, kDevice, std::string(512, 'k'));
}

TEST_F(RegistryTest, KeyIsNeverStoredInPlain) {
  const std::string key = "PLAINTEXT-MARKER-0123456789abcdef";
  std::string generated;
  {
    auto registry = open();
    add_ok(registry, kDevice, key);
    generated = add_ok(registry, DeviceId{43}, std::nullopt);
    EXPECT_EQ(registry.verify(kDevice, key), LoginCheck::ok);
  }
  const std::string bytes = all_file_bytes();
  // The files do hold the rows (so this is not a search through empty files) ...
  EXPECT_NE(bytes.find("pbkdf2-sha256:4096"), std::string::npos);
  // ... but neither key.
  EXPECT_EQ(bytes.find(key), std::string::npos);
  EXPECT_EQ(bytes.find(generated), std::string::npos);
  EXPECT_EQ(column(kDevice, "key_hash").size(), 32u);
  EXPECT_EQ(column(kDevice, "salt").size(), 16u);
  EXPECT_NE(column(kDevice, "key_hash").find_first_not_of('\0'), std::string::npos);
}

TEST_F(RegistryTest, SaltsDifferForTheSameKey) {
  auto registry = open();
  add_ok(registry, DeviceId{1}, std::string(kKey));
  add_ok(registry, DeviceId{2}, std::string(kKey));
  EXPECT_NE(column(DeviceId{1}, "salt"), column(DeviceId{2}, "salt"));
  EXPECT_NE(column(DeviceId{1}, "key_hash"), column(DeviceId{2}, "key_hash"));
}

TEST_F(RegistryTest, GeneratedKeysAreDistinctBase64Url) {
  auto registry = open();
  std::set<std::string> keys;
  for (std::uint64_t i = 1; i <= 100; ++i) {
    const std::string key = add_ok(registry, DeviceId{i}, std::nullopt);
    ASSERT_EQ(key.size(), 32u) << key;
    EXPECT_TRUE(std::all_of(key.begin(), key.end(), [](char c) {
      return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
             c == '-' || c == '_';
    })) << key;
    keys.insert(key);
  }
  EXPECT_EQ(keys.size(), 100u);
}

TEST_F(RegistryTest, ImportsTenThousandInOneTransaction) {
  auto registry = open();
  std::vector<DeviceKey> devices;
  for (std::uint64_t i = 0; i < 10'000; ++i) {
    devices.push_back({DeviceId{1'000'000 + i}, "key-" + std::to_string(i * 7919)});
  }
  const auto imported = registry.import(devices, kGeneratedKeyIterations);
  ASSERT_TRUE(imported) << imported.error();
  EXPECT_EQ(*imported, 10'000u);
  const auto listed = registry.list();
  ASSERT_TRUE(listed) << listed.error();
  ASSERT_EQ(listed->size(), 10'000u);
  EXPECT_EQ(listed->front().id, DeviceId{1'000'000});
  EXPECT_EQ(listed->back().id, DeviceId{1'009'999});
  for (std::size_t i : {0u, 1u, 4'999u, 9'999u}) {
    EXPECT_EQ(registry.verify(devices[i].id, devices[i].key), LoginCheck::ok) << i;
  }
  EXPECT_EQ(registry.verify(devices[5].id, devices[6].key), LoginCheck::wrong_key);
  EXPECT_EQ(column(devices[5].id, "kdf"), "pbkdf2-sha256:1");
}

TEST_F(RegistryTest, ImportUsesTheGivenKeyCostByDefault) {
  auto registry = open();
  const std::vector<DeviceKey> devices{{DeviceId{7}, "seven"}};
  ASSERT_TRUE(registry.import(devices));
  EXPECT_EQ(column(DeviceId{7}, "kdf"), "pbkdf2-sha256:4096");
  EXPECT_EQ(registry.verify(DeviceId{7}, "seven"), LoginCheck::ok);
}

TEST_F(RegistryTest, BadImportImportsNothing) {
  auto registry = open();
  add_ok(registry, kDevice, std::string(kKey));
  const std::vector<std::vector<DeviceKey>> bad_batches{
      {{DeviceId{1}, "one"}, {DeviceId{2}, "bad key"}, {DeviceId{3}, "three"}},
      {{DeviceId{1}, "one"}, {kDevice, "exists"}, {DeviceId{3}, "three"}},
      {{DeviceId{1}, "one"}, {DeviceId{3}, "three"}, {DeviceId{1}, "twice"}},
  };
  for (const auto& batch : bad_batches) {
    const auto imported = registry.import(batch, kGeneratedKeyIterations);
    ASSERT_FALSE(imported);
    const auto listed = registry.list();
    ASSERT_TRUE(listed);
    ASSERT_EQ(listed->size(), 1u) << imported.error();
    EXPECT_EQ(registry.verify(DeviceId{1}, "one"), LoginCheck::unknown_device);
  }
  // A failed import leaves no transaction open: the next one works.
  const std::vector<DeviceKey> good{{DeviceId{1}, "one"}};
  ASSERT_TRUE(registry.import(good, kGeneratedKeyIterations));
  EXPECT_EQ(registry.verify(DeviceId{1}, "one"), LoginCheck::ok);
}

TEST_F(RegistryTest, ReplayMarkOnlyRises) {
  auto registry = open();
  add_ok(registry, kDevice, std::string(kKey));
  EXPECT_EQ(registry.replay_mark(kDevice), std::nullopt);
  EXPECT_EQ(registry.replay_mark(DeviceId{43}), std::nullopt);
  const protocol::Time t100{protocol::Tick{17'000'000'000'000}};
  const auto seen = std::chrono::sys_seconds{1'700'000'000s};

  registry.record_session_end(kDevice, seen, t100);
  EXPECT_EQ(registry.replay_mark(kDevice), t100);
  registry.record_session_end(kDevice, seen + 10s, t100 - protocol::Tick{1});
  EXPECT_EQ(registry.replay_mark(kDevice), t100);
  registry.record_session_end(kDevice, seen + 20s, t100 + protocol::Tick{1});
  EXPECT_EQ(registry.replay_mark(kDevice), t100 + protocol::Tick{1});

  const auto info = registry.find(kDevice);
  ASSERT_TRUE(info && *info);
  EXPECT_EQ((*info)->last_seen, seen + 20s);
  EXPECT_EQ((*info)->replay_mark, t100 + protocol::Tick{1});
}

TEST_F(RegistryTest, NewDeviceHasCreationTimeAndNoLastSeen) {
  auto registry = open();
  const auto before = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
  add_ok(registry, kDevice, std::string(kKey));
  const auto after = std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now());
  const auto info = registry.find(kDevice);
  ASSERT_TRUE(info && *info);
  EXPECT_EQ((*info)->id, kDevice);
  EXPECT_TRUE((*info)->enabled);
  EXPECT_GE((*info)->created_at, before);
  EXPECT_LE((*info)->created_at, after);
  EXPECT_EQ((*info)->last_seen, std::nullopt);
  EXPECT_EQ((*info)->replay_mark, std::nullopt);
  EXPECT_EQ((*info)->sessions, 0u);
  EXPECT_EQ((*info)->last_login, std::nullopt);
  EXPECT_EQ((*info)->last_peer, "");
  EXPECT_EQ((*info)->last_close_reason, "");
  EXPECT_EQ((*info)->last_skew, std::nullopt);
}

TEST_F(RegistryTest, ReadOnlyCannotWrite) {
  {
    auto writer = open();
    add_ok(writer, kDevice, std::string(kKey));
  }
  auto reader = open(Mode::read_only);
  EXPECT_EQ(reader.verify(kDevice, kKey), LoginCheck::ok);
  const auto added = reader.add(DeviceId{43}, std::nullopt);
  ASSERT_FALSE(added);
  EXPECT_NE(added.error().find("readonly"), std::string::npos) << added.error();
  EXPECT_FALSE(reader.remove(kDevice));
  EXPECT_FALSE(reader.set_enabled(kDevice, false));
  const std::vector<DeviceKey> devices{{DeviceId{44}, "k"}};
  EXPECT_FALSE(reader.import(devices));
  reader.record_session_end(kDevice, std::chrono::system_clock::now(),
                            protocol::Time{protocol::Tick{5}});  // logged, not thrown
  EXPECT_EQ(reader.replay_mark(kDevice), std::nullopt);
  const auto listed = reader.list();
  ASSERT_TRUE(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_TRUE(listed->front().enabled);
}

TEST_F(RegistryTest, ReadOnlyNeedsAnExistingRegistry) {
  const auto missing = DeviceRegistry::open(path_, Mode::read_only);
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().find(path_), std::string::npos) << missing.error();
  EXPECT_FALSE(fs::exists(path_));
}

TEST_F(RegistryTest, TwoHandlesSeeEachOthersChanges) {
  auto a = open();
  auto b = open();
  add_ok(a, kDevice, std::string(kKey));
  EXPECT_EQ(b.verify(kDevice, kKey), LoginCheck::ok);
  ASSERT_TRUE(b.set_enabled(kDevice, false));
  EXPECT_EQ(a.verify(kDevice, kKey), LoginCheck::disabled);
  const protocol::Time mark{protocol::Tick{123'456}};
  a.record_session_end(kDevice, std::chrono::system_clock::now(), mark);
  EXPECT_EQ(b.replay_mark(kDevice), mark);
  ASSERT_TRUE(b.remove(kDevice));
  EXPECT_EQ(a.verify(kDevice, kKey), LoginCheck::unknown_device);
}

TEST_F(RegistryTest, ReopenKeepsDevices) {
  { auto registry = open(); add_ok(registry, kDevice, std::string(kKey)); }
  auto registry = open();
  EXPECT_EQ(registry.verify(kDevice, kKey), LoginCheck::ok);
}

TEST_F(RegistryTest, MissingDirectoryIsNamed) {
  const std::string path = (dir_ / "no-such-dir" / "devices.db").string();
  const auto registry = DeviceRegistry::open(path, Mode::read_write);
  ASSERT_FALSE(registry);
  EXPECT_NE(registry.error().find(path), std::string::npos) << registry.error();
  EXPECT_NE(registry.error().find("unable to open"), std::string::npos) << registry.error();
}

TEST_F(RegistryTest, RefusesAFileThatIsNotARegistry) {
  { std::ofstream(path_) << "this is not a database, just some text long enough to look at\n"; }
  const auto garbage = DeviceRegistry::open(path_, Mode::read_write);
  ASSERT_FALSE(garbage);
  EXPECT_NE(garbage.error().find(path_), std::string::npos) << garbage.error();
  EXPECT_NE(garbage.error().find("not a database"), std::string::npos) << garbage.error();
}

TEST_F(RegistryTest, RefusesAnotherSchemaVersion) {
  make_plain_database("PRAGMA user_version = 7");
  for (Mode mode : {Mode::read_write, Mode::read_only}) {
    const auto registry = DeviceRegistry::open(path_, mode);
    ASSERT_FALSE(registry);
    EXPECT_NE(registry.error().find("schema version 7"), std::string::npos) << registry.error();
  }
}

TEST_F(RegistryTest, ReadOnlyRefusesAnEmptyDatabase) {
  make_plain_database("CREATE TABLE other (x)");
  const auto registry = DeviceRegistry::open(path_, Mode::read_only);
  ASSERT_FALSE(registry);
  EXPECT_NE(registry.error().find("not a device registry"), std::string::npos) << registry.error();
}

TEST_F(RegistryTest, UpgradesAVersionOneRegistry) {
  // The schema of the first release, with one device in it.
  make_plain_database(R"sql(
    CREATE TABLE devices (id INTEGER PRIMARY KEY, salt BLOB NOT NULL, key_hash BLOB NOT NULL,
      kdf TEXT NOT NULL, enabled INTEGER NOT NULL DEFAULT 1, created_at INTEGER NOT NULL,
      last_seen INTEGER, replay_mark INTEGER NOT NULL DEFAULT 0);
    INSERT INTO devices (id, salt, key_hash, kdf, created_at) VALUES (7, x'00', x'00', 'pbkdf2-sha256:1', 0);
    PRAGMA user_version = 1;)sql");
  const auto reader = DeviceRegistry::open(path_, Mode::read_only);
  ASSERT_FALSE(reader);
  EXPECT_NE(reader.error().find("schema version 1 is older"), std::string::npos) << reader.error();

  auto registry = open();
  EXPECT_EQ(column(DeviceId{7}, "online_owner"), "");  // the column exists now (NULL)
  auto upgraded = open(Mode::read_only);
  const auto listed = upgraded.list();
  ASSERT_TRUE(listed);
  EXPECT_EQ(listed->size(), 1u);
}

// The registry file of the release before `devices show` (schema version 2), with a device
// that has a session behind it: the upgrade adds the columns and keeps what was there.
TEST_F(RegistryTest, UpgradesAVersionTwoRegistryInPlace) {
  make_plain_database(R"sql(
    CREATE TABLE devices (id INTEGER PRIMARY KEY CHECK (id BETWEEN 0 AND 9999999999),
      salt BLOB NOT NULL, key_hash BLOB NOT NULL, kdf TEXT NOT NULL,
      enabled INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)), created_at INTEGER NOT NULL,
      last_seen INTEGER, replay_mark INTEGER NOT NULL DEFAULT 0, online_owner INTEGER);
    INSERT INTO devices (id, salt, key_hash, kdf, created_at, last_seen, replay_mark)
      VALUES (7, x'00', x'00', 'pbkdf2-sha256:1', 5, 1700000000, 123);
    PRAGMA user_version = 2;)sql");
  const auto reader = DeviceRegistry::open(path_, Mode::read_only);
  ASSERT_FALSE(reader);
  EXPECT_NE(reader.error().find("schema version 2 is older"), std::string::npos) << reader.error();

  auto registry = open();  // read-write: upgrades
  EXPECT_EQ(column(DeviceId{7}, "sessions"), "0");
  auto before = registry.find(DeviceId{7});
  ASSERT_TRUE(before && *before);
  EXPECT_EQ((*before)->last_seen, std::chrono::sys_seconds{1'700'000'000s});
  EXPECT_EQ((*before)->replay_mark, protocol::Time{protocol::Tick{123}});
  EXPECT_EQ((*before)->sessions, 0u);
  EXPECT_EQ((*before)->last_close_reason, "");
  EXPECT_EQ((*before)->last_skew, std::nullopt);

  registry.record_session_end(DeviceId{7}, std::chrono::sys_seconds{1'700'000'100s},
                              protocol::Time{protocol::Tick{456}},
                              SessionFacts{.close_reason = "idle_timeout"});
  auto upgraded = open(Mode::read_only);  // the file is at the current version now
  const auto after = upgraded.find(DeviceId{7});
  ASSERT_TRUE(after && *after);
  EXPECT_EQ((*after)->sessions, 1u);
  EXPECT_EQ((*after)->last_close_reason, "idle_timeout");
  EXPECT_EQ((*after)->replay_mark, protocol::Time{protocol::Tick{456}});
}

TEST_F(RegistryTest, SessionEndKeepsTheLastSessionAndCountsThem) {
  auto registry = open();
  add_ok(registry, kDevice, std::string(kKey));
  const auto login = std::chrono::sys_seconds{1'700'000'000s};
  const protocol::Time mark{protocol::Tick{17'000'000'000'000}};
  registry.record_session_end(kDevice, login + 60s, mark,
                              SessionFacts{.close_reason = "peer_closed",
                                           .peer = "127.0.0.1:4000",
                                           .login = login,
                                           .skew = ClockSkew{.last_ms = -1500, .largest_ms = -2100}});
  registry.record_session_end(kDevice, login + 600s, mark,
                              SessionFacts{.close_reason = "idle_timeout",
                                           .peer = "[::1]:5000",
                                           .login = login + 500s,
                                           .skew = ClockSkew{.last_ms = 20, .largest_ms = 1999}});
  const auto info = registry.find(kDevice);
  ASSERT_TRUE(info && *info);
  EXPECT_EQ((*info)->sessions, 2u);
  EXPECT_EQ((*info)->last_seen, login + 600s);
  EXPECT_EQ((*info)->last_login, login + 500s);
  EXPECT_EQ((*info)->last_peer, "[::1]:5000");
  EXPECT_EQ((*info)->last_close_reason, "idle_timeout");
  EXPECT_EQ((*info)->last_skew, (ClockSkew{.last_ms = 20, .largest_ms = 1999}));

  // A session end that knows nothing more (an older caller) still counts, and does not
  // leave the previous session's facts standing as if they were its own.
  registry.record_session_end(kDevice, login + 700s, mark);
  const auto bare = registry.find(kDevice);
  ASSERT_TRUE(bare && *bare);
  EXPECT_EQ((*bare)->sessions, 3u);
  EXPECT_EQ((*bare)->last_close_reason, "");
  EXPECT_EQ((*bare)->last_login, std::nullopt);
  EXPECT_EQ((*bare)->last_skew, std::nullopt);
}

TEST_F(RegistryTest, MovedRegistryKeepsWorking) {
  auto first = open();
  add_ok(first, kDevice, std::string(kKey));
  DeviceRegistry second = std::move(first);
  EXPECT_EQ(second.verify(kDevice, kKey), LoginCheck::ok);
  auto third = open();
  third = std::move(second);
  EXPECT_EQ(third.verify(kDevice, kKey), LoginCheck::ok);
}

TEST(LoginCheckName, SnakeCaseNames) {
  EXPECT_EQ(name(LoginCheck::ok), "ok");
  EXPECT_EQ(name(LoginCheck::unknown_device), "unknown_device");
  EXPECT_EQ(name(LoginCheck::disabled), "disabled_device");
  EXPECT_EQ(name(LoginCheck::wrong_key), "wrong_key");
  EXPECT_EQ(name(LoginCheck::registry_error), "registry_error");
}

}  // namespace
}  // namespace iotsocket
