// DeviceRegistry: the devices allowed to log in, their salted key hashes and the little
// run-time state that must outlive a server restart (last seen, replay mark). One SQLite
// file shared by several processes (the server's workers, iotsocketctl), in WAL mode so
// that readers never wait for the writer.
//
// Owns one sqlite3 connection and its prepared statements; move-only (a moved-from
// registry may only be destroyed or assigned to). A connection must not cross fork():
// each process opens its own.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/clock_skew.hpp"
#include "common/sqlite.hpp"
#include "protocol/device_id.hpp"
#include "common/expected.hpp"
#include "protocol/time.hpp"

namespace iotsocket {

using protocol::DeviceId;

// The outcome of a login. A disabled device is reported as such only to a caller that
// gave the right key; with a wrong key it is wrong_key, so that a key guesser learns
// nothing about the device's state.
enum class LoginCheck { ok, unknown_device, disabled, wrong_key, registry_error };

// Stable snake_case names for log lines: ok, unknown_device, disabled_device, wrong_key,
// registry_error.
std::string_view name(LoginCheck check) noexcept;

struct DeviceInfo {
  DeviceId id;
  bool enabled = true;
  std::chrono::sys_seconds created_at{};
  std::optional<std::chrono::sys_seconds> last_seen;  // nullopt: never logged in
  std::optional<protocol::Time> replay_mark;          // nullopt: no TIME recorded yet
  // The last session that ended (`iotsocketctl devices show`); written at its end only.
  std::uint64_t sessions = 0;                          // sessions that ended, ever
  std::optional<std::chrono::sys_seconds> last_login;  // start of the last one
  std::string last_peer;                               // "" when unknown
  std::string last_close_reason;                       // reason code, "" when unknown
  std::optional<ClockSkew> last_skew;                  // of its last frames
};

// What the worker knows about a session when it ends, besides last_seen and the mark.
struct SessionFacts {
  std::string_view close_reason;                       // a reason code (README), "" unknown
  std::string peer;                                    // "" unknown
  std::optional<std::chrono::sys_seconds> login;       // when the session started
  std::optional<ClockSkew> skew;                       // of its last frames
};

// One device of a bulk import.
struct DeviceKey {
  DeviceId id;
  std::string key;
};

// PBKDF2-HMAC-SHA256 iteration counts (see registry.cpp for why generated keys get 1).
inline constexpr int kGeneratedKeyIterations = 1;
inline constexpr int kGivenKeyIterations = 4096;

class DeviceRegistry {
 public:
  enum class Mode { read_only, read_write };

  // Opens the registry at `path`. read_write creates the file and the schema when missing;
  // read_only needs an existing registry and refuses every write. Errors name the file
  // and what failed.
  static Expected<DeviceRegistry, std::string> open(const std::string& path, Mode mode);

  DeviceRegistry(DeviceRegistry&&) noexcept;
  DeviceRegistry& operator=(DeviceRegistry&&) noexcept;
  DeviceRegistry(const DeviceRegistry&) = delete;
  DeviceRegistry& operator=(const DeviceRegistry&) = delete;
  ~DeviceRegistry();

  const std::string& path() const noexcept { return path_; }

  // --- login (the server's data plane: never throws) ---
  LoginCheck verify(DeviceId id, std::string_view key) noexcept;

  // The highest TIME recorded for the device at the end of a session; nullopt when the
  // device is unknown, has none yet, or the registry failed (logged as a warning).
  std::optional<protocol::Time> replay_mark(DeviceId id) noexcept;

  // Sets last_seen, raises (never lowers) the replay mark, counts the session and stores
  // `facts` as the last session's: one write per session, none per login or frame. A
  // failure is logged as a warning: the session has ended either way.
  void record_session_end(DeviceId id, std::chrono::system_clock::time_point last_seen,
                          protocol::Time mark, const SessionFacts& facts = {}) noexcept;

  // --- management (iotsocketctl) ---
  // Adds an enabled device. With no key, generates one (32 characters of base64url);
  // returns the key either way.
  Expected<std::string, std::string> add(DeviceId id, std::optional<std::string> key);
  Status remove(DeviceId id);
  Status set_enabled(DeviceId id, bool enabled);
  Expected<std::vector<DeviceInfo>, std::string> list();
  Expected<std::optional<DeviceInfo>, std::string> find(DeviceId id);

  // Adds all devices in one transaction, or none (an invalid key, a device that exists or
  // appears twice). kGeneratedKeyIterations is for keys known to be random; returns the
  // number added.
  Expected<std::size_t, std::string> import(std::span<const DeviceKey> devices,
                                            int iterations = kGivenKeyIterations);

 private:
  // Prepared once, reused for every call. Declared after db_, so destroyed before it.
  struct Statements {
    sqlite::Stmt login, insert, remove, set_enabled, list, find, replay_mark, session_end, begin,
        commit, rollback;
  };

  DeviceRegistry(std::string path, sqlite::Db db, Statements statements) noexcept;

  std::string error(std::string_view what) const;
  // A device's row before it is stored: salt, PBKDF2 hash and its iteration count.
  struct NewKey {
    DeviceId id;
    std::array<unsigned char, 16> salt;
    std::array<unsigned char, 32> hash;
    int iterations;
  };
  static std::optional<NewKey> new_key(const DeviceKey& device, int iterations) noexcept;
  Status insert(const NewKey& device);

  std::string path_;
  sqlite::Db db_;
  Statements stmts_;
};

}  // namespace iotsocket
