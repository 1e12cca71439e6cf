// SQLite owners and the helpers that the device registry and the offline push queue share.
//
// Db owns a connection, Stmt a prepared statement; both are move-only and close (finalize)
// their object when destroyed. StmtUse does not own its statement: it only resets it.
// Declares sqlite3 and sqlite3_stmt without including <sqlite3.h>, so that users of the
// registry and the queue need not see SQLite.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "protocol/device_id.hpp"
#include "common/expected.hpp"

struct sqlite3;
struct sqlite3_stmt;

namespace iotsocket::sqlite {

// Owners of a connection and of a prepared statement.
struct DbCloser {
  void operator()(sqlite3* db) const noexcept;
};
struct StmtFinalizer {
  void operator()(sqlite3_stmt* stmt) const noexcept;
};
using Db = std::unique_ptr<sqlite3, DbCloser>;
using Stmt = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

// Resets a statement when a call is done with it, so that no read transaction stays open
// (an open one would keep WAL checkpoints from completing) and no statement stays active
// (an active one would keep a transaction from committing cleanly).
class StmtUse {
 public:
  explicit StmtUse(const Stmt& stmt) noexcept : stmt_(stmt.get()) {}
  StmtUse(const StmtUse&) = delete;
  StmtUse& operator=(const StmtUse&) = delete;
  ~StmtUse();
  sqlite3_stmt* get() const noexcept { return stmt_; }

 private:
  sqlite3_stmt* stmt_;
};

// Opens the file at `path` with sqlite3_open_v2 `flags`, with extended result codes and a
// busy timeout. The error is "cannot open: " and SQLite's message.
Expected<Db, std::string> open(const std::string& path, int flags, int busy_timeout_ms);

// SQLite's message for the connection's last error ("out of memory" without a connection).
const char* errmsg(sqlite3* db) noexcept;

// Runs SQL that returns no rows; nullopt on success, else SQLite's message.
std::optional<std::string> exec(sqlite3* db, const char* sql);

// Prepares one statement for a single use; null on failure (errmsg() says why).
Stmt prepare(sqlite3* db, const char* sql) noexcept;

// Prepares statements that are kept and reused (SQLITE_PREPARE_PERSISTENT), each into its
// owner; on failure, an error that names the statement.
std::optional<std::string> prepare_all(sqlite3* db,
                                       std::span<const std::pair<Stmt*, const char*>> statements);

// Steps a statement that returns no rows (BEGIN, COMMIT, ...) and resets it; true when done.
bool run(const Stmt& stmt) noexcept;

// Runs SQL that returns at most one value of interest (the first column of the first row):
// "" or 0 when it returns no row; nullopt and `error` set (naming the SQL) on failure.
std::optional<std::string> query_text(sqlite3* db, const char* sql, std::string& error);
std::optional<std::int64_t> query_int(sqlite3* db, const char* sql, std::string& error);

// A column's bytes, valid until the statement steps or resets; empty for NULL.
std::span<const unsigned char> column_blob(sqlite3_stmt* stmt, int column) noexcept;
std::string_view column_text(sqlite3_stmt* stmt, int column) noexcept;

// Binds a device ID to parameter 1 (every statement that takes one takes it first).
bool bind_id(sqlite3_stmt* stmt, protocol::DeviceId id) noexcept;

// Runs `change` (which checks, creates or upgrades the schema) in one write transaction,
// from BEGIN IMMEDIATE to COMMIT; rolls back when it fails and returns its error.
std::optional<std::string> change_schema(
    sqlite3* db, const std::function<std::optional<std::string>()>& change);

// Takes a schema from version `from` (PRAGMA user_version) to steps.size(): steps[v] takes
// it from v to v + 1. The caller holds the write lock.
std::optional<std::string> upgrade(sqlite3* db, std::span<const char* const> steps,
                                   std::size_t from);

}  // namespace iotsocket::sqlite
