#include "master/offline_queue.hpp"

#include <sqlite3.h>

#include <charconv>
#include <exception>
#include <iterator>
#include <limits>
#include <optional>
#include <utility>

namespace iotsocket::master {

using protocol::DeviceId;
using sqlite::bind_id;
using sqlite::errmsg;
using sqlite::StmtUse;
using Clock = std::chrono::system_clock;

namespace {

// ---- schema ----
//
// One table. `seq` is the queue order, table-wide (a device's pushes are its rows in seq
// order): a push takes the next key after the table's highest, a requeued push a key below
// the table's lowest (negative is fine), so both keep every device's order and no key is
// ever used twice. queued_at is in nanoseconds since the Unix epoch, so a time point comes
// back exactly as it went in. The second index makes expire() read only what expired.
//
// kUpgrades[v] takes a file from version v (PRAGMA user_version) to v + 1; change the
// schema only by appending a step.
constexpr const char* kUpgrades[] = {
    // 0 -> 1
    R"sql(
CREATE TABLE pushes (
  seq       INTEGER PRIMARY KEY,
  device    INTEGER NOT NULL,
  queued_at INTEGER NOT NULL,
  payload   BLOB NOT NULL
);
CREATE INDEX pushes_by_device ON pushes (device, seq);
CREATE INDEX pushes_by_age ON pushes (queued_at);
)sql",
};
constexpr int kSchemaVersion = static_cast<int>(std::size(kUpgrades));

// The master is the only writer, so a lock is only ever held by a reader such as the
// sqlite3 shell; the master's loop must not wait long for it.
constexpr int kBusyTimeoutMs = 100;

// Brings a new file (no schema) or an older schema up to date. The caller holds the write
// lock.
std::optional<std::string> check_version(sqlite3* db) {
  std::string error;
  const auto version = sqlite::query_int(db, "PRAGMA user_version", error);
  if (!version) return error;
  if (*version == kSchemaVersion) return std::nullopt;
  if (*version < 0 || *version > kSchemaVersion) {
    return "schema version " + std::to_string(*version) +
           " is unknown (this program knows version " + std::to_string(kSchemaVersion) + ")";
  }
  if (*version == 0) {
    const auto tables = sqlite::query_int(db, "SELECT count(*) FROM sqlite_master", error);
    if (!tables) return error;
    if (*tables != 0) return std::string("not an offline push queue (it holds other tables)");
  }
  return sqlite::upgrade(db, kUpgrades, static_cast<std::size_t>(*version));
}

// WAL with synchronous=NORMAL: a commit is an append to the WAL with no fsync, which keeps
// one transaction per push cheap. The file stays consistent on power loss; the last
// commits before it may be lost, a trade the device registry makes too.
std::optional<std::string> prepare_schema(sqlite3* db) {
  const sqlite::Stmt journal = sqlite::prepare(db, "PRAGMA journal_mode = WAL");
  if (!journal || sqlite3_step(journal.get()) != SQLITE_ROW) {
    return std::string("setting WAL journal mode: ") + errmsg(db);
  }
  const std::string got(sqlite::column_text(journal.get(), 0));
  sqlite3_reset(journal.get());
  // "memory": an in-memory database (":memory:"), which has no WAL and needs none.
  if (got != "wal" && got != "memory") return "cannot use WAL journal mode (got '" + got + "')";
  if (auto failed = sqlite::exec(db, "PRAGMA synchronous = NORMAL")) {
    return "setting synchronous: " + *failed;
  }
  return sqlite::change_schema(db, [db] { return check_version(db); });
}

// ---- rows ----

std::int64_t to_sql(Clock::time_point t) noexcept {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

Clock::time_point time_from_sql(std::int64_t nanoseconds) noexcept {
  return Clock::time_point(
      std::chrono::duration_cast<Clock::duration>(std::chrono::nanoseconds(nanoseconds)));
}

// queued_at values below this have expired at `now`. Saturates rather than overflowing
// (max_age is not negative: open() checks it).
std::int64_t expiry_cutoff(Clock::time_point now, std::chrono::seconds max_age) noexcept {
  constexpr std::int64_t kLowest = std::numeric_limits<std::int64_t>::min();
  constexpr std::int64_t kPerSecond = 1'000'000'000;
  if (max_age.count() > std::numeric_limits<std::int64_t>::max() / kPerSecond) return kLowest;
  std::int64_t cutoff = 0;
  if (__builtin_sub_overflow(to_sql(now), max_age.count() * kPerSecond, &cutoff)) return kLowest;
  return cutoff;
}

bool bind_payload(sqlite3_stmt* stmt, int index, std::string_view payload) noexcept {
  // A null pointer would bind NULL; an empty payload is a zero-length blob.
  static constexpr char kEmpty = 0;
  return sqlite3_bind_blob64(stmt, index, payload.empty() ? &kEmpty : payload.data(),
                             payload.size(), SQLITE_STATIC) == SQLITE_OK;
}

// Columns: seq, device, queued_at, payload.
QueuedPush read_push(sqlite3_stmt* stmt) {
  QueuedPush push;
  push.device = DeviceId{static_cast<std::uint64_t>(sqlite3_column_int64(stmt, 1))};
  push.queued_at = time_from_sql(sqlite3_column_int64(stmt, 2));
  const auto payload = sqlite::column_blob(stmt, 3);
  push.payload.assign(reinterpret_cast<const char*>(payload.data()), payload.size());
  return push;
}

// One write transaction: BEGIN IMMEDIATE, then ROLLBACK when it ends without a COMMIT
// (an error return or an exception alike).
class Transaction {
 public:
  Transaction(sqlite3* db, const sqlite::Stmt& begin, const sqlite::Stmt& commit,
              const sqlite::Stmt& rollback) noexcept
      : db_(db), commit_(commit), rollback_(rollback), begun_(sqlite::run(begin)) {}
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction() {
    // A failed COMMIT may have ended the transaction already.
    if (begun_ && !committed_ && sqlite3_get_autocommit(db_) == 0) sqlite::run(rollback_);
  }
  bool begun() const noexcept { return begun_; }
  bool commit() noexcept {
    committed_ = sqlite::run(commit_);
    return committed_;
  }

 private:
  sqlite3* db_;
  const sqlite::Stmt& commit_;
  const sqlite::Stmt& rollback_;
  bool begun_;
  bool committed_ = false;
};

std::string device_text(DeviceId id) { return "device " + protocol::to_string(id); }

}  // namespace

// ---- opening ----

Expected<OfflineQueue, std::string> OfflineQueue::open(const OfflineOptions& options) noexcept {
  try {
    const auto fail = [&options](std::string_view what) {
      return Unexpected{"offline queue " + options.path + ": " + std::string(what)};
    };
    if (options.path.empty()) return Unexpected{std::string("offline queue: no file given")};
    if (options.max_age.count() < 0) return fail("max_age must not be negative");
    auto opened = sqlite::open(options.path,
                               SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                               kBusyTimeoutMs);
    if (!opened) return fail(opened.error());
    sqlite::Db db = std::move(*opened);
    sqlite3* raw = db.get();
    if (auto failed = prepare_schema(raw)) return fail(*failed);

    constexpr const char* kColumns = "SELECT seq, device, queued_at, payload FROM pushes ";
    const std::string oldest = std::string(kColumns) + "WHERE device = ?1 ORDER BY seq LIMIT ?2";
    const std::string device_rows = std::string(kColumns) + "WHERE device = ?1 ORDER BY seq";
    const std::string expired_rows =
        std::string(kColumns) + "WHERE queued_at < ?1 ORDER BY device, seq";
    Statements s;
    const std::pair<sqlite::Stmt*, const char*> sql[] = {
        {&s.begin, "BEGIN IMMEDIATE"},
        {&s.commit, "COMMIT"},
        {&s.rollback, "ROLLBACK"},
        {&s.append, "INSERT INTO pushes (device, queued_at, payload) VALUES (?1, ?2, ?3)"},
        {&s.insert_at,
         "INSERT INTO pushes (seq, device, queued_at, payload) VALUES (?4, ?1, ?2, ?3)"},
        {&s.min_seq, "SELECT min(seq) FROM pushes"},
        {&s.oldest, oldest.c_str()},
        {&s.remove_through, "DELETE FROM pushes WHERE device = ?1 AND seq <= ?2"},
        {&s.device_rows, device_rows.c_str()},
        {&s.remove_device, "DELETE FROM pushes WHERE device = ?1"},
        {&s.expired_rows, expired_rows.c_str()},
        {&s.remove_expired, "DELETE FROM pushes WHERE queued_at < ?1"},
    };
    if (auto failed = sqlite::prepare_all(raw, sql)) return fail(*failed);

    std::unordered_map<DeviceId, std::size_t> counts;
    const sqlite::Stmt count_stmt =
        sqlite::prepare(raw, "SELECT device, count(*) FROM pushes GROUP BY device");
    if (!count_stmt) return fail(std::string("counting the queued pushes: ") + errmsg(raw));
    sqlite3_stmt* counting = count_stmt.get();
    int step = SQLITE_ROW;
    while ((step = sqlite3_step(counting)) == SQLITE_ROW) {
      counts.emplace(DeviceId{static_cast<std::uint64_t>(sqlite3_column_int64(counting, 0))},
                     static_cast<std::size_t>(sqlite3_column_int64(counting, 1)));
    }
    if (step != SQLITE_DONE) return fail(std::string("counting the queued pushes: ") + errmsg(raw));
    sqlite3_reset(counting);  // no read transaction left open
    return OfflineQueue(options, std::move(db), std::move(s), std::move(counts));
  } catch (const std::exception& e) {
    return Unexpected{"offline queue " + options.path + ": opening: " + e.what()};
  }
}

OfflineQueue::OfflineQueue(const OfflineOptions& options, sqlite::Db db, Statements statements,
                           std::unordered_map<DeviceId, std::size_t> counts)
    : path_(options.path),
      max_per_device_(options.max_per_device),
      max_age_(options.max_age),
      db_(std::move(db)),
      stmts_(std::move(statements)),
      counts_(std::move(counts)) {
  for (const auto& [device, queued] : counts_) total_ += queued;
}

OfflineQueue::OfflineQueue(OfflineQueue&&) noexcept = default;
OfflineQueue& OfflineQueue::operator=(OfflineQueue&&) noexcept = default;
OfflineQueue::~OfflineQueue() = default;

std::string OfflineQueue::error(std::string_view what) const {
  return "offline queue " + path_ + ": " + std::string(what) + ": " + errmsg(db_.get());
}

std::size_t OfflineQueue::count(DeviceId device) const noexcept {
  const auto it = counts_.find(device);
  return it != counts_.end() ? it->second : 0;
}

void OfflineQueue::forget_if_empty(DeviceId device) noexcept {
  if (const auto it = counts_.find(device); it != counts_.end() && it->second == 0) {
    counts_.erase(it);
  }
}

// ---- the public operations ----
//
// Each makes the device's count entry before it writes (the only step after COMMIT is then
// arithmetic, which cannot fail) and turns an exception (out of memory) into an error; the
// open Transaction rolls back on the way out.

Expected<std::vector<QueuedPush>, std::string> OfflineQueue::push(DeviceId device,
                                                                  std::string_view payload,
                                                                  Clock::time_point now) noexcept {
  try {
    auto stored = store(device, payload, now, counts_[device]);
    forget_if_empty(device);
    return stored;
  } catch (const std::exception& e) {
    forget_if_empty(device);
    return Unexpected{"offline queue " + path_ + ": storing a push for " + device_text(device) +
                      ": " + e.what()};
  }
}

Expected<std::vector<QueuedPush>, std::string> OfflineQueue::requeue_front(
    DeviceId device, std::span<const QueuedPush> pushes,
    Clock::time_point /*now: see the header*/) noexcept {
  try {
    if (pushes.empty()) return Pushes{};
    for (const QueuedPush& push : pushes) {
      if (push.device != device) {
        return Unexpected{"offline queue " + path_ + ": a push for " + device_text(push.device) +
                          " cannot be requeued for " + device_text(device) + " (nothing requeued)"};
      }
    }
    auto stored = store_front(device, pushes, counts_[device]);
    forget_if_empty(device);
    return stored;
  } catch (const std::exception& e) {
    forget_if_empty(device);
    return Unexpected{"offline queue " + path_ + ": requeueing pushes for " + device_text(device) +
                      ": " + e.what()};
  }
}

Expected<OfflineQueue::Taken, std::string> OfflineQueue::take(DeviceId device,
                                                              Clock::time_point now) noexcept {
  try {
    if (!has(device)) return Taken{};
    return take_all(device, expiry_cutoff(now, max_age_));
  } catch (const std::exception& e) {
    return Unexpected{"offline queue " + path_ + ": taking the pushes for " + device_text(device) +
                      ": " + e.what()};
  }
}

Expected<std::vector<QueuedPush>, std::string> OfflineQueue::expire(
    Clock::time_point now) noexcept {
  try {
    if (total_ == 0) return Pushes{};
    return expire_all(expiry_cutoff(now, max_age_));
  } catch (const std::exception& e) {
    return Unexpected{"offline queue " + path_ + ": expiring pushes: " + e.what()};
  }
}

Expected<std::size_t, std::string> OfflineQueue::drop(DeviceId device) noexcept {
  try {
    const StmtUse use(stmts_.remove_device);
    if (!bind_id(use.get(), device) ||
        sqlite3_step(use.get()) != SQLITE_DONE) {
      return Unexpected{error("dropping the pushes for " + device_text(device))};
    }
    const auto removed = static_cast<std::size_t>(sqlite3_changes64(db_.get()));
    if (const auto it = counts_.find(device); it != counts_.end()) {
      total_ -= it->second;
      counts_.erase(it);
    }
    return removed;
  } catch (const std::exception& e) {
    return Unexpected{"offline queue " + path_ + ": dropping the pushes for " +
                      device_text(device) + ": " + e.what()};
  }
}

// ---- the transactions ----

Expected<std::vector<QueuedPush>, std::string> OfflineQueue::store(DeviceId device,
                                                                   std::string_view payload,
                                                                   Clock::time_point now,
                                                                   std::size_t& queued) {
  const auto what = [device] { return "storing a push for " + device_text(device); };
  Transaction tx(db_.get(), stmts_.begin, stmts_.commit, stmts_.rollback);
  if (!tx.begun()) return Unexpected{error(what())};
  if (auto inserted = insert(device, std::nullopt, payload, to_sql(now)); !inserted) {
    return Unexpected{inserted.error()};
  }
  auto evicted = evict_beyond_limit(device, queued + 1);
  if (!evicted) return Unexpected{evicted.error()};
  if (!tx.commit()) return Unexpected{error(what())};
  queued = queued + 1 - evicted->size();
  total_ = total_ + 1 - evicted->size();
  return std::move(*evicted);
}

Expected<std::vector<QueuedPush>, std::string> OfflineQueue::store_front(
    DeviceId device, std::span<const QueuedPush> pushes, std::size_t& queued) {
  const auto what = [device] { return "requeueing pushes for " + device_text(device); };
  Transaction tx(db_.get(), stmts_.begin, stmts_.commit, stmts_.rollback);
  if (!tx.begun()) return Unexpected{error(what())};
  // Keys below the table's lowest: before every push of this device, and unused.
  std::int64_t lowest = 1;
  {
    const StmtUse use(stmts_.min_seq);
    if (sqlite3_step(use.get()) != SQLITE_ROW) return Unexpected{error(what())};
    if (sqlite3_column_type(use.get(), 0) != SQLITE_NULL) {
      lowest = sqlite3_column_int64(use.get(), 0);
    }
  }
  std::int64_t key = 0;
  if (pushes.size() > static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max()) ||
      __builtin_sub_overflow(lowest, static_cast<std::int64_t>(pushes.size()), &key)) {
    return Unexpected{"offline queue " + path_ + ": " + what() + ": no queue keys left below " +
                      std::to_string(lowest)};
  }
  for (const QueuedPush& push : pushes) {
    if (auto inserted = insert(device, key++, push.payload, to_sql(push.queued_at)); !inserted) {
      return Unexpected{inserted.error()};
    }
  }
  auto evicted = evict_beyond_limit(device, queued + pushes.size());
  if (!evicted) return Unexpected{evicted.error()};
  if (!tx.commit()) return Unexpected{error(what())};
  queued = queued + pushes.size() - evicted->size();
  total_ = total_ + pushes.size() - evicted->size();
  return std::move(*evicted);
}

Expected<std::vector<QueuedPush>, std::string> OfflineQueue::evict_beyond_limit(DeviceId device,
                                                                                std::size_t queued) {
  if (queued <= max_per_device_) return Pushes{};
  return remove_oldest(device, queued - max_per_device_);
}

Expected<OfflineQueue::Taken, std::string> OfflineQueue::take_all(DeviceId device,
                                                                  std::int64_t cutoff) {
  const auto what = [device] { return "taking the pushes for " + device_text(device); };
  Transaction tx(db_.get(), stmts_.begin, stmts_.commit, stmts_.rollback);
  if (!tx.begun()) return Unexpected{error(what())};
  Taken taken;
  {
    const StmtUse use(stmts_.device_rows);
    sqlite3_stmt* stmt = use.get();
    int rc = bind_id(stmt, device) ? SQLITE_ROW : SQLITE_ERROR;
    while (rc == SQLITE_ROW && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      (sqlite3_column_int64(stmt, 2) < cutoff ? taken.expired : taken.pushes)
          .push_back(read_push(stmt));
    }
    if (rc != SQLITE_DONE) return Unexpected{error(what())};
  }
  {
    const StmtUse use(stmts_.remove_device);
    if (!bind_id(use.get(), device) ||
        sqlite3_step(use.get()) != SQLITE_DONE) {
      return Unexpected{error(what())};
    }
  }
  if (!tx.commit()) return Unexpected{error(what())};
  if (const auto it = counts_.find(device); it != counts_.end()) {
    total_ -= it->second;
    counts_.erase(it);
  }
  return taken;
}

Expected<std::vector<QueuedPush>, std::string> OfflineQueue::expire_all(std::int64_t cutoff) {
  constexpr std::string_view what = "expiring pushes";
  Transaction tx(db_.get(), stmts_.begin, stmts_.commit, stmts_.rollback);
  if (!tx.begun()) return Unexpected{error(what)};
  Pushes expired;
  {
    const StmtUse use(stmts_.expired_rows);
    sqlite3_stmt* stmt = use.get();
    int rc = sqlite3_bind_int64(stmt, 1, cutoff) == SQLITE_OK ? SQLITE_ROW : SQLITE_ERROR;
    while (rc == SQLITE_ROW && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      expired.push_back(read_push(stmt));
    }
    if (rc != SQLITE_DONE) return Unexpected{error(what)};
  }
  if (expired.empty()) return expired;  // the transaction rolls back: nothing was written
  {
    const StmtUse use(stmts_.remove_expired);
    if (sqlite3_bind_int64(use.get(), 1, cutoff) != SQLITE_OK ||
        sqlite3_step(use.get()) != SQLITE_DONE) {
      return Unexpected{error(what)};
    }
  }
  if (!tx.commit()) return Unexpected{error(what)};
  for (const QueuedPush& push : expired) {
    const auto it = counts_.find(push.device);
    if (it == counts_.end()) continue;  // cannot happen while the master is the only writer
    --it->second;
    --total_;
    if (it->second == 0) counts_.erase(it);
  }
  return expired;
}

Status OfflineQueue::insert(DeviceId device, std::optional<std::int64_t> seq,
                            std::string_view payload, std::int64_t queued_at) {
  const StmtUse use(seq ? stmts_.insert_at : stmts_.append);
  sqlite3_stmt* stmt = use.get();
  const bool bound = bind_id(stmt, device) &&
                     sqlite3_bind_int64(stmt, 2, queued_at) == SQLITE_OK &&
                     bind_payload(stmt, 3, payload) &&
                     (!seq || sqlite3_bind_int64(stmt, 4, *seq) == SQLITE_OK);
  if (!bound || sqlite3_step(stmt) != SQLITE_DONE) {
    return Unexpected{error("storing a push for " + device_text(device))};
  }
  return std::monostate{};
}

Expected<std::vector<QueuedPush>, std::string> OfflineQueue::remove_oldest(DeviceId device,
                                                                           std::size_t how_many) {
  const auto what = [device] { return "evicting the oldest pushes for " + device_text(device); };
  Pushes oldest;
  std::int64_t last = 0;
  {
    const StmtUse use(stmts_.oldest);
    sqlite3_stmt* stmt = use.get();
    const bool bound =
        bind_id(stmt, device) &&
        sqlite3_bind_int64(stmt, 2, static_cast<sqlite3_int64>(how_many)) == SQLITE_OK;
    int rc = bound ? SQLITE_ROW : SQLITE_ERROR;
    while (rc == SQLITE_ROW && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      last = sqlite3_column_int64(stmt, 0);
      oldest.push_back(read_push(stmt));
    }
    if (rc != SQLITE_DONE) return Unexpected{error(what())};
  }
  if (oldest.empty()) return oldest;
  const StmtUse use(stmts_.remove_through);
  if (!bind_id(use.get(), device) ||
      sqlite3_bind_int64(use.get(), 2, last) != SQLITE_OK ||
      sqlite3_step(use.get()) != SQLITE_DONE) {
    return Unexpected{error(what())};
  }
  return oldest;
}

}  // namespace iotsocket::master
