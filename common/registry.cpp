#include "common/registry.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <sqlite3.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <iterator>
#include <type_traits>
#include <cstring>

#include <spdlog/spdlog.h>

#include "protocol/encoder.hpp"

namespace iotsocket {

using sqlite::bind_id;
using sqlite::column_blob;
using sqlite::column_text;
using sqlite::errmsg;
using sqlite::StmtUse;

namespace {

// ---- key hashing ----
//
// Keys are stored as PBKDF2-HMAC-SHA256(key, 16-byte random salt), 32 bytes. Stretching
// (many iterations) only helps against guessing keys that are guessable. A key we generate
// has 192 bits of randomness: no amount of stretching changes the odds of guessing it,
// while every iteration costs the server CPU on each login, which matters in a reconnect
// storm of 100,000 devices. So generated keys get 1 iteration. Keys given by an operator
// (legacy devices, possibly weak) get 4096. The kdf column records the cost per device,
// so it can be raised later without breaking existing rows.

constexpr std::size_t kSaltBytes = 16;
constexpr std::size_t kHashBytes = 32;
constexpr std::size_t kGeneratedKeyBytes = 24;  // 192 bits; 32 characters of base64url
constexpr std::string_view kKdfPrefix = "pbkdf2-sha256:";
constexpr int kMaxIterations = 10'000'000;  // a corrupt kdf column must not stall a login

using Salt = std::array<unsigned char, kSaltBytes>;
using Hash = std::array<unsigned char, kHashBytes>;

bool hash_key(std::string_view key, std::span<const unsigned char> salt, int iterations,
              Hash& out) noexcept {
  if (key.size() > static_cast<std::size_t>(INT32_MAX)) return false;
  return PKCS5_PBKDF2_HMAC(key.data(), static_cast<int>(key.size()), salt.data(),
                           static_cast<int>(salt.size()), iterations, EVP_sha256(),
                           static_cast<int>(out.size()), out.data()) == 1;
}

std::string kdf_name(int iterations) { return std::string(kKdfPrefix) + std::to_string(iterations); }

std::optional<int> parse_kdf(std::string_view kdf) noexcept {
  if (!kdf.starts_with(kKdfPrefix)) return std::nullopt;
  kdf.remove_prefix(kKdfPrefix.size());
  int iterations = 0;
  const auto [end, ec] = std::from_chars(kdf.data(), kdf.data() + kdf.size(), iterations);
  if (ec != std::errc{} || end != kdf.data() + kdf.size()) return std::nullopt;
  if (iterations < 1 || iterations > kMaxIterations) return std::nullopt;
  return iterations;
}

std::optional<std::string> generate_key() {
  std::array<unsigned char, kGeneratedKeyBytes> raw{};
  if (RAND_bytes(raw.data(), static_cast<int>(raw.size())) != 1) return std::nullopt;
  // 24 bytes are 32 base64 characters with no padding; then the URL-safe alphabet.
  std::array<unsigned char, kGeneratedKeyBytes / 3 * 4 + 1> text{};
  const int length = EVP_EncodeBlock(text.data(), raw.data(), static_cast<int>(raw.size()));
  std::string key(reinterpret_cast<const char*>(text.data()), static_cast<std::size_t>(length));
  for (char& c : key) {
    if (c == '+') c = '-';
    if (c == '/') c = '_';
  }
  return key;
}

std::string hashing_failed(DeviceId id) {
  return "device " + protocol::to_string(id) + ": hashing the key failed (OpenSSL)";
}

// ---- SQLite helpers ----

std::optional<protocol::Time> mark_from_sql(sqlite3_int64 ticks) noexcept {
  if (ticks <= 0) return std::nullopt;  // 0: none recorded
  return protocol::Time{protocol::Tick{ticks}};
}

std::optional<std::chrono::sys_seconds> seconds_from_sql(sqlite3_stmt* stmt, int column) noexcept {
  if (sqlite3_column_type(stmt, column) == SQLITE_NULL) return std::nullopt;
  return std::chrono::sys_seconds{std::chrono::seconds{sqlite3_column_int64(stmt, column)}};
}

// The columns read_info() reads, in its order.
#define IOTSOCKET_INFO_COLUMNS                                                       \
  "id, enabled, created_at, last_seen, replay_mark, sessions, last_login, last_peer, " \
  "last_close_reason, last_skew_ms, max_skew_ms"

DeviceInfo read_info(sqlite3_stmt* stmt) noexcept {
  DeviceInfo info;
  info.id = DeviceId{static_cast<std::uint64_t>(sqlite3_column_int64(stmt, 0))};
  info.enabled = sqlite3_column_int(stmt, 1) != 0;
  info.created_at = seconds_from_sql(stmt, 2).value_or(std::chrono::sys_seconds{});
  info.last_seen = seconds_from_sql(stmt, 3);
  info.replay_mark = mark_from_sql(sqlite3_column_int64(stmt, 4));
  info.sessions = static_cast<std::uint64_t>(std::max<sqlite3_int64>(sqlite3_column_int64(stmt, 5), 0));
  info.last_login = seconds_from_sql(stmt, 6);
  info.last_peer = column_text(stmt, 7);
  info.last_close_reason = column_text(stmt, 8);
  if (sqlite3_column_type(stmt, 9) != SQLITE_NULL && sqlite3_column_type(stmt, 10) != SQLITE_NULL) {
    info.last_skew = ClockSkew{.last_ms = sqlite3_column_int(stmt, 9),
                               .largest_ms = sqlite3_column_int(stmt, 10)};
  }
  return info;
}

// Binds `text` to parameter `index`, NULL when empty. SQLITE_TRANSIENT: the caller's
// string may be gone before the statement steps.
bool bind_text_or_null(sqlite3_stmt* stmt, int index, std::string_view text) noexcept {
  if (text.empty()) return sqlite3_bind_null(stmt, index) == SQLITE_OK;
  return sqlite3_bind_text(stmt, index, text.data(), static_cast<int>(text.size()),
                           SQLITE_TRANSIENT) == SQLITE_OK;
}

bool bind_facts(sqlite3_stmt* stmt, const SessionFacts& facts) noexcept {
  const auto bind_optional = [stmt](int index, std::optional<sqlite3_int64> value) {
    return (value ? sqlite3_bind_int64(stmt, index, *value) : sqlite3_bind_null(stmt, index)) ==
           SQLITE_OK;
  };
  const auto login = facts.login ? std::optional<sqlite3_int64>(facts.login->time_since_epoch().count())
                                 : std::nullopt;
  const auto skew = facts.skew;
  return bind_text_or_null(stmt, 4, facts.close_reason) && bind_text_or_null(stmt, 5, facts.peer) &&
         bind_optional(6, login) &&
         bind_optional(7, skew ? std::optional<sqlite3_int64>(skew->last_ms) : std::nullopt) &&
         bind_optional(8, skew ? std::optional<sqlite3_int64>(skew->largest_ms) : std::nullopt);
}

sqlite3_int64 unix_now() noexcept {
  return std::chrono::floor<std::chrono::seconds>(std::chrono::system_clock::now())
      .time_since_epoch()
      .count();
}

std::string no_device(DeviceId id) { return "no device " + protocol::to_string(id); }

std::string bad_key(DeviceId id) {
  return "device " + protocol::to_string(id) +
         ": a key must be 1 to 512 printable ASCII characters, without spaces, ':' or \"|#|\"";
}

// ---- schema ----

constexpr int kBusyTimeoutMs = 200;

// The schema as steps: kUpgrades[v] takes a registry from version v (PRAGMA user_version)
// to v + 1. A new file runs them all; a file from an older release runs the rest. Change
// the schema only by appending a step.
constexpr const char* kUpgrades[] = {
    // 0 -> 1
    R"sql(
CREATE TABLE devices (
  id          INTEGER PRIMARY KEY CHECK (id BETWEEN 0 AND 9999999999),
  salt        BLOB NOT NULL,
  key_hash    BLOB NOT NULL,
  kdf         TEXT NOT NULL,
  enabled     INTEGER NOT NULL DEFAULT 1 CHECK (enabled IN (0, 1)),
  created_at  INTEGER NOT NULL,
  last_seen   INTEGER,
  replay_mark INTEGER NOT NULL DEFAULT 0
))sql",
    // 1 -> 2: which worker held a device; unused since the shared-memory table decides
    // (shm/), kept so that every older file upgrades the same way
    "ALTER TABLE devices ADD COLUMN online_owner INTEGER",
    // 2 -> 3: the last session that ended (iotsocketctl devices show), written at its end
    R"sql(
ALTER TABLE devices ADD COLUMN sessions INTEGER NOT NULL DEFAULT 0;
ALTER TABLE devices ADD COLUMN last_login INTEGER;
ALTER TABLE devices ADD COLUMN last_peer TEXT;
ALTER TABLE devices ADD COLUMN last_close_reason TEXT;
ALTER TABLE devices ADD COLUMN last_skew_ms INTEGER;
ALTER TABLE devices ADD COLUMN max_skew_ms INTEGER
)sql",
};
constexpr int kSchemaVersion = static_cast<int>(std::size(kUpgrades));

// Checks the schema version and, when `upgrade`, brings an older schema (or none) up to
// date. The caller holds the write lock.
std::optional<std::string> check_version(sqlite3* db, bool upgrade) {
  std::string error;
  const auto text = sqlite::query_text(db, "PRAGMA user_version", error);
  if (!text) return error;
  int version = -1;
  std::from_chars(text->data(), text->data() + text->size(), version);
  if (version == kSchemaVersion) return std::nullopt;
  const std::string known = " (this program knows version " + std::to_string(kSchemaVersion) + ")";
  if (version < 0 || version > kSchemaVersion) return "schema version " + *text + " is unknown" + known;
  if (!upgrade) {
    if (version == 0) return "not a device registry (no schema; `iotsocketctl devices add` creates one)";
    return "schema version " + *text + " is older" + known +
           "; opening it for writing (iotsocketctl devices add/remove/enable, the server) upgrades it";
  }
  return sqlite::upgrade(db, kUpgrades, static_cast<std::size_t>(version));
}

// WAL: readers (the workers' logins) never wait for a writer (iotsocketctl). In WAL mode
// synchronous=NORMAL keeps the file consistent on power loss and may lose only the last
// commits (a last_seen, a replay mark); the server's session ends stay off the disk's
// fsync path.
std::optional<std::string> prepare_schema(sqlite3* db, DeviceRegistry::Mode mode) {
  if (mode == DeviceRegistry::Mode::read_only) return check_version(db, false);
  std::string error;
  const auto journal = sqlite::query_text(db, "PRAGMA journal_mode = WAL", error);
  if (!journal) return error;
  if (*journal != "wal") return "cannot use WAL journal mode (got '" + *journal + "')";
  if (auto failed = sqlite::exec(db, "PRAGMA synchronous = NORMAL")) return *failed;
  // Two processes may create a fresh file at once: the write lock decides which one.
  return sqlite::change_schema(db, [db] { return check_version(db, true); });
}

}  // namespace

std::string_view name(LoginCheck check) noexcept {
  switch (check) {
    case LoginCheck::ok: return "ok";
    case LoginCheck::unknown_device: return "unknown_device";
    case LoginCheck::disabled: return "disabled_device";
    case LoginCheck::wrong_key: return "wrong_key";
    case LoginCheck::registry_error: return "registry_error";
  }
  return "unknown_login_check";
}

// ---- opening ----

Expected<DeviceRegistry, std::string> DeviceRegistry::open(const std::string& path, Mode mode) {
  const auto fail = [&path](std::string_view what) {
    return Unexpected{"device registry " + path + ": " + std::string(what)};
  };
  const int flags = (mode == Mode::read_only ? SQLITE_OPEN_READONLY
                                             : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
                    SQLITE_OPEN_NOMUTEX;
  auto opened = sqlite::open(path, flags, kBusyTimeoutMs);
  if (!opened) return fail(opened.error());
  sqlite::Db db = std::move(*opened);
  sqlite3* raw = db.get();
  if (auto failed = prepare_schema(raw, mode)) return fail(*failed);

  Statements s;
  const std::pair<sqlite::Stmt*, const char*> sql[] = {
      {&s.login, "SELECT salt, key_hash, kdf, enabled FROM devices WHERE id = ?1"},
      {&s.insert,
       "INSERT INTO devices (id, salt, key_hash, kdf, enabled, created_at, last_seen, "
       "replay_mark) VALUES (?1, ?2, ?3, ?4, 1, ?5, NULL, 0)"},
      {&s.remove, "DELETE FROM devices WHERE id = ?1"},
      {&s.set_enabled, "UPDATE devices SET enabled = ?2 WHERE id = ?1"},
      {&s.list, "SELECT " IOTSOCKET_INFO_COLUMNS " FROM devices ORDER BY id"},
      {&s.find, "SELECT " IOTSOCKET_INFO_COLUMNS " FROM devices WHERE id = ?1"},
      {&s.replay_mark, "SELECT replay_mark FROM devices WHERE id = ?1"},
      {&s.session_end,
       "UPDATE devices SET last_seen = ?2, replay_mark = max(replay_mark, ?3), "
       "sessions = sessions + 1, last_close_reason = ?4, last_peer = ?5, last_login = ?6, "
       "last_skew_ms = ?7, max_skew_ms = ?8 WHERE id = ?1"},
      {&s.begin, "BEGIN IMMEDIATE"},
      {&s.commit, "COMMIT"},
      {&s.rollback, "ROLLBACK"},
  };
  if (auto failed = sqlite::prepare_all(raw, sql)) return fail(*failed);
  return DeviceRegistry(path, std::move(db), std::move(s));
}

DeviceRegistry::DeviceRegistry(std::string path, sqlite::Db db, Statements statements) noexcept
    : path_(std::move(path)), db_(std::move(db)), stmts_(std::move(statements)) {}

DeviceRegistry::DeviceRegistry(DeviceRegistry&&) noexcept = default;
DeviceRegistry& DeviceRegistry::operator=(DeviceRegistry&&) noexcept = default;
DeviceRegistry::~DeviceRegistry() = default;

std::string DeviceRegistry::error(std::string_view what) const {
  return "device registry " + path_ + ": " + std::string(what) + ": " + errmsg(db_.get());
}

// ---- login ----

LoginCheck DeviceRegistry::verify(DeviceId id, std::string_view key) noexcept {
  const StmtUse use(stmts_.login);
  sqlite3_stmt* stmt = use.get();
  Hash computed{};
  int rc = bind_id(stmt, id) ? sqlite3_step(stmt) : SQLITE_ERROR;
  if (rc == SQLITE_DONE) {
    // Same cost as a legacy key's check, so that "no such device" does not answer faster.
    const Salt dummy_salt{};
    hash_key(key, dummy_salt, kGivenKeyIterations, computed);
    return LoginCheck::unknown_device;
  }
  if (rc != SQLITE_ROW) {
    spdlog::warn("device registry {}: reading device {:010}: {}", path_, id.value, errmsg(db_.get()));
    return LoginCheck::registry_error;
  }
  const auto salt = column_blob(stmt, 0);
  const auto stored = column_blob(stmt, 1);
  const auto iterations = parse_kdf(column_text(stmt, 2));
  const bool enabled = sqlite3_column_int(stmt, 3) != 0;
  if (salt.size() != kSaltBytes || stored.size() != kHashBytes || !iterations ||
      !hash_key(key, salt, *iterations, computed)) {
    spdlog::warn("device registry {}: device {:010} has a malformed key record", path_, id.value);
    return LoginCheck::registry_error;
  }
  if (CRYPTO_memcmp(computed.data(), stored.data(), kHashBytes) != 0) return LoginCheck::wrong_key;
  return enabled ? LoginCheck::ok : LoginCheck::disabled;
}

std::optional<protocol::Time> DeviceRegistry::replay_mark(DeviceId id) noexcept {
  const StmtUse use(stmts_.replay_mark);
  sqlite3_stmt* stmt = use.get();
  const int rc = bind_id(stmt, id) ? sqlite3_step(stmt) : SQLITE_ERROR;
  if (rc == SQLITE_ROW) return mark_from_sql(sqlite3_column_int64(stmt, 0));
  if (rc != SQLITE_DONE) {
    spdlog::warn("device registry {}: reading the replay mark of device {:010}: {}", path_,
                 id.value, errmsg(db_.get()));
  }
  return std::nullopt;
}

void DeviceRegistry::record_session_end(DeviceId id, std::chrono::system_clock::time_point last_seen,
                                        protocol::Time mark, const SessionFacts& facts) noexcept {
  const StmtUse use(stmts_.session_end);
  sqlite3_stmt* stmt = use.get();
  const auto seen = std::chrono::floor<std::chrono::seconds>(last_seen).time_since_epoch().count();
  const bool bound = bind_id(stmt, id) &&
                     sqlite3_bind_int64(stmt, 2, seen) == SQLITE_OK &&
                     sqlite3_bind_int64(stmt, 3, mark.time_since_epoch().count()) == SQLITE_OK &&
                     bind_facts(stmt, facts);
  if (!bound || sqlite3_step(stmt) != SQLITE_DONE) {
    spdlog::warn("device registry {}: recording the session end of device {:010}: {}", path_,
                 id.value, errmsg(db_.get()));
  }
}

// ---- management ----

std::optional<DeviceRegistry::NewKey> DeviceRegistry::new_key(const DeviceKey& device,
                                                              int iterations) noexcept {
  NewKey out{device.id, {}, {}, iterations};
  static_assert(std::is_same_v<decltype(out.salt), Salt> && std::is_same_v<decltype(out.hash), Hash>);
  if (RAND_bytes(out.salt.data(), static_cast<int>(out.salt.size())) != 1 ||
      !hash_key(device.key, out.salt, iterations, out.hash)) {
    return std::nullopt;
  }
  return out;
}

Status DeviceRegistry::insert(const NewKey& device) {
  const std::string kdf = kdf_name(device.iterations);
  const StmtUse use(stmts_.insert);
  sqlite3_stmt* stmt = use.get();
  const bool bound =
      bind_id(stmt, device.id) &&
      sqlite3_bind_blob(stmt, 2, device.salt.data(), static_cast<int>(device.salt.size()), SQLITE_STATIC) == SQLITE_OK &&
      sqlite3_bind_blob(stmt, 3, device.hash.data(), static_cast<int>(device.hash.size()), SQLITE_STATIC) == SQLITE_OK &&
      sqlite3_bind_text(stmt, 4, kdf.data(), static_cast<int>(kdf.size()), SQLITE_STATIC) == SQLITE_OK &&
      sqlite3_bind_int64(stmt, 5, unix_now()) == SQLITE_OK;
  if (!bound) return Unexpected{error("adding device " + protocol::to_string(device.id))};
  const int rc = sqlite3_step(stmt);
  if (rc == SQLITE_DONE) return std::monostate{};
  if (rc == SQLITE_CONSTRAINT_PRIMARYKEY) {
    return Unexpected{"device " + protocol::to_string(device.id) + " already exists"};
  }
  return Unexpected{error("adding device " + protocol::to_string(device.id))};
}

Expected<std::string, std::string> DeviceRegistry::add(DeviceId id, std::optional<std::string> key) {
  if (id.value > protocol::kMaxDeviceId) return Unexpected{std::string("device ID out of range")};
  int iterations = kGivenKeyIterations;
  if (key) {
    if (!protocol::is_sendable_key(*key)) return Unexpected{bad_key(id)};
  } else {
    key = generate_key();
    if (!key) return Unexpected{std::string("generating a key failed (OpenSSL RAND_bytes)")};
    iterations = kGeneratedKeyIterations;
  }
  const auto hashed = new_key(DeviceKey{id, *key}, iterations);
  if (!hashed) return Unexpected{hashing_failed(id)};
  if (auto added = insert(*hashed); !added) return Unexpected{added.error()};
  return std::move(*key);
}

Status DeviceRegistry::remove(DeviceId id) {
  const StmtUse use(stmts_.remove);
  if (!bind_id(use.get(), id) || sqlite3_step(use.get()) != SQLITE_DONE) {
    return Unexpected{error("removing device " + protocol::to_string(id))};
  }
  if (sqlite3_changes(db_.get()) == 0) return Unexpected{no_device(id)};
  return std::monostate{};
}

Status DeviceRegistry::set_enabled(DeviceId id, bool enabled) {
  const StmtUse use(stmts_.set_enabled);
  if (!bind_id(use.get(), id) || sqlite3_bind_int(use.get(), 2, enabled ? 1 : 0) != SQLITE_OK ||
      sqlite3_step(use.get()) != SQLITE_DONE) {
    return Unexpected{error((enabled ? "enabling device " : "disabling device ") + protocol::to_string(id))};
  }
  if (sqlite3_changes(db_.get()) == 0) return Unexpected{no_device(id)};
  return std::monostate{};
}

Expected<std::vector<DeviceInfo>, std::string> DeviceRegistry::list() {
  const StmtUse use(stmts_.list);
  std::vector<DeviceInfo> devices;
  int rc = SQLITE_ROW;
  while ((rc = sqlite3_step(use.get())) == SQLITE_ROW) devices.push_back(read_info(use.get()));
  if (rc != SQLITE_DONE) return Unexpected{error("listing devices")};
  return devices;
}

Expected<std::optional<DeviceInfo>, std::string> DeviceRegistry::find(DeviceId id) {
  const StmtUse use(stmts_.find);
  const int rc = bind_id(use.get(), id) ? sqlite3_step(use.get()) : SQLITE_ERROR;
  if (rc == SQLITE_ROW) return std::optional<DeviceInfo>(read_info(use.get()));
  if (rc == SQLITE_DONE) return std::optional<DeviceInfo>();
  return Unexpected{error("reading device " + protocol::to_string(id))};
}

Expected<std::size_t, std::string> DeviceRegistry::import(std::span<const DeviceKey> devices,
                                                          int iterations) {
  if (iterations < 1 || iterations > kMaxIterations) {
    return Unexpected{"iteration count " + std::to_string(iterations) + " out of range"};
  }
  for (const DeviceKey& device : devices) {
    if (device.id.value > protocol::kMaxDeviceId) return Unexpected{std::string("device ID out of range")};
    if (!protocol::is_sendable_key(device.key)) return Unexpected{bad_key(device.id)};
  }
  // Hash first: the write lock, which every worker's claim and release waits for, is then
  // held only for the inserts.
  std::vector<NewKey> hashed;
  hashed.reserve(devices.size());
  for (const DeviceKey& device : devices) {
    auto one = new_key(device, iterations);
    if (!one) return Unexpected{hashing_failed(device.id) + " (nothing imported)"};
    hashed.push_back(*one);
  }
  if (!sqlite::run(stmts_.begin)) return Unexpected{error("starting the import")};
  for (const NewKey& device : hashed) {
    if (auto added = insert(device); !added) {
      sqlite::run(stmts_.rollback);
      return Unexpected{added.error() + " (nothing imported)"};
    }
  }
  if (!sqlite::run(stmts_.commit)) {
    std::string failed = error("committing the import");
    sqlite::run(stmts_.rollback);
    return Unexpected{failed + " (nothing imported)"};
  }
  return devices.size();
}

}  // namespace iotsocket
