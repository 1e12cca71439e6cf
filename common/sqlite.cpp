#include "common/sqlite.hpp"

#include <sqlite3.h>

namespace iotsocket::sqlite {

namespace {

// Steps `sql` once: `read` takes the first row, `none` stands for no row.
template <class T, class Read>
std::optional<T> query_first(sqlite3* db, const char* sql, T none, Read read, std::string& error) {
  const Stmt stmt = prepare(db, sql);
  if (!stmt) {
    error = std::string(sql) + ": " + errmsg(db);
    return std::nullopt;
  }
  const int rc = sqlite3_step(stmt.get());
  if (rc == SQLITE_ROW) return read(stmt.get());
  if (rc == SQLITE_DONE) return none;
  error = std::string(sql) + ": " + errmsg(db);
  return std::nullopt;
}

}  // namespace

void DbCloser::operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }
void StmtFinalizer::operator()(sqlite3_stmt* stmt) const noexcept { sqlite3_finalize(stmt); }

StmtUse::~StmtUse() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

Expected<Db, std::string> open(const std::string& path, int flags, int busy_timeout_ms) {
  sqlite3* raw = nullptr;
  const int rc = sqlite3_open_v2(path.c_str(), &raw, flags, nullptr);
  Db db(raw);  // a handle comes back even when opening failed
  if (rc != SQLITE_OK) return Unexpected{std::string("cannot open: ") + errmsg(raw)};
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, busy_timeout_ms);
  return db;
}

const char* errmsg(sqlite3* db) noexcept {
  return db != nullptr ? sqlite3_errmsg(db) : "out of memory";
}

std::optional<std::string> exec(sqlite3* db, const char* sql) {
  char* message = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &message) == SQLITE_OK) return std::nullopt;
  std::string error = message != nullptr ? message : errmsg(db);
  sqlite3_free(message);
  return error;
}

Stmt prepare(sqlite3* db, const char* sql) noexcept {
  sqlite3_stmt* raw = nullptr;
  if (sqlite3_prepare_v2(db, sql, -1, &raw, nullptr) != SQLITE_OK) return Stmt();
  return Stmt(raw);
}

std::optional<std::string> prepare_all(sqlite3* db,
                                       std::span<const std::pair<Stmt*, const char*>> statements) {
  for (const auto& [stmt, text] : statements) {
    sqlite3_stmt* prepared = nullptr;
    if (sqlite3_prepare_v3(db, text, -1, SQLITE_PREPARE_PERSISTENT, &prepared, nullptr) !=
        SQLITE_OK) {
      return std::string("preparing \"") + text + "\": " + errmsg(db);
    }
    stmt->reset(prepared);
  }
  return std::nullopt;
}

bool run(const Stmt& stmt) noexcept {
  const StmtUse use(stmt);
  return sqlite3_step(use.get()) == SQLITE_DONE;
}

std::optional<std::string> query_text(sqlite3* db, const char* sql, std::string& error) {
  return query_first<std::string>(
      db, sql, std::string(), [](sqlite3_stmt* stmt) { return std::string(column_text(stmt, 0)); },
      error);
}

std::optional<std::int64_t> query_int(sqlite3* db, const char* sql, std::string& error) {
  return query_first<std::int64_t>(
      db, sql, 0, [](sqlite3_stmt* stmt) { return sqlite3_column_int64(stmt, 0); }, error);
}

std::span<const unsigned char> column_blob(sqlite3_stmt* stmt, int column) noexcept {
  const void* data = sqlite3_column_blob(stmt, column);
  const int bytes = sqlite3_column_bytes(stmt, column);
  if (data == nullptr || bytes <= 0) return {};
  return {static_cast<const unsigned char*>(data), static_cast<std::size_t>(bytes)};
}

std::string_view column_text(sqlite3_stmt* stmt, int column) noexcept {
  const unsigned char* text = sqlite3_column_text(stmt, column);
  const int bytes = sqlite3_column_bytes(stmt, column);
  if (text == nullptr || bytes <= 0) return {};
  return {reinterpret_cast<const char*>(text), static_cast<std::size_t>(bytes)};
}

bool bind_id(sqlite3_stmt* stmt, protocol::DeviceId id) noexcept {
  return sqlite3_bind_int64(stmt, 1, static_cast<sqlite3_int64>(id.value)) == SQLITE_OK;
}

std::optional<std::string> change_schema(
    sqlite3* db, const std::function<std::optional<std::string>()>& change) {
  if (auto failed = exec(db, "BEGIN IMMEDIATE")) return "locking: " + *failed;
  if (auto failed = change()) {
    exec(db, "ROLLBACK");
    return failed;
  }
  if (auto failed = exec(db, "COMMIT")) return "committing the schema: " + *failed;
  return std::nullopt;
}

std::optional<std::string> upgrade(sqlite3* db, std::span<const char* const> steps,
                                   std::size_t from) {
  for (std::size_t step = from; step < steps.size(); ++step) {
    if (auto failed = exec(db, steps[step])) {
      return "upgrading the schema to version " + std::to_string(step + 1) + ": " + *failed;
    }
  }
  const std::string set_version = "PRAGMA user_version = " + std::to_string(steps.size());
  if (auto failed = exec(db, set_version.c_str())) return "setting the schema version: " + *failed;
  return std::nullopt;
}

}  // namespace iotsocket::sqlite
