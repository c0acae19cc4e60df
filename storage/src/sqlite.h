// Thin RAII helpers over the SQLite C API, private to kubetrain::storage.
//
// Every error becomes an absl::Status whose message names the database path and the operation
// ("workspace /home/u/.kubetrain/workspace.db: insert job "x": UNIQUE constraint failed: ...").
// Code mapping: BUSY/LOCKED -> Unavailable (retry later), CONSTRAINT -> AlreadyExists or
// FailedPrecondition, CORRUPT/NOTADB -> DataLoss, FULL -> ResourceExhausted,
// CANTOPEN/PERM/READONLY/AUTH -> PermissionDenied, others -> Internal.
//
// Thread-safety: a Db and its Statements are used by one thread at a time (the caller locks).
#ifndef KUBETRAIN_STORAGE_SRC_SQLITE_H_
#define KUBETRAIN_STORAGE_SRC_SQLITE_H_

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kubetrain::storage_internal {

class Db;

// A prepared statement. Bind* use 1-based indices. Step() returns true while a row is available.
class Statement {
 public:
  Statement(Db* db, sqlite3_stmt* stmt, std::string sql)
      : db_(db), stmt_(stmt), sql_(std::move(sql)) {}
  Statement(Statement&& other) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  Statement& Bind(int index, int64_t value);
  Statement& BindDouble(int index, double value);  // NaN is stored as NULL (SQLite has no NaN)
  Statement& BindNull(int index);
  Statement& Bind(int index, absl::string_view text);       // TEXT, copied
  Statement& BindBlob(int index, absl::string_view bytes);  // BLOB, copied

  // Runs one step. Returns true when a row is available, false when done.
  absl::StatusOr<bool> Step(absl::string_view operation);
  // Runs the statement to completion, ignoring rows.
  absl::Status Run(absl::string_view operation);
  void Reset();

  int64_t ColumnInt(int index) const { return sqlite3_column_int64(stmt_, index); }
  double ColumnDouble(int index) const { return sqlite3_column_double(stmt_, index); }
  bool ColumnIsNull(int index) const { return sqlite3_column_type(stmt_, index) == SQLITE_NULL; }
  std::string ColumnText(int index) const;
  std::string ColumnBlob(int index) const;

 private:
  Db* db_;
  sqlite3_stmt* stmt_;
  std::string sql_;
};

// One connection.
class Db {
 public:
  // Opens (creating) `path`, sets WAL mode, busy_timeout and foreign keys.
  static absl::StatusOr<std::unique_ptr<Db>> Open(const std::string& path, int busy_timeout_ms);
  ~Db();
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;

  absl::Status Exec(absl::string_view sql, absl::string_view operation);
  absl::StatusOr<Statement> Prepare(absl::string_view sql, absl::string_view operation);

  int64_t LastInsertRowId() const { return sqlite3_last_insert_rowid(db_); }
  int Changes() const { return sqlite3_changes(db_); }
  const std::string& path() const { return path_; }

  // Builds the Status for SQLite result `rc` during `operation`.
  absl::Status Error(int rc, absl::string_view operation) const;

 private:
  Db(sqlite3* db, std::string path) : db_(db), path_(std::move(path)) {}
  sqlite3* db_;
  std::string path_;
};

// A transaction: Begin(immediate) starts it; Commit() ends it; destruction without Commit() rolls
// back. Immediate transactions take the write lock up front (use for every writing transaction,
// so WAL never has to upgrade a read snapshot, which fails with BUSY without waiting).
class Transaction {
 public:
  static absl::StatusOr<Transaction> Begin(Db* db, bool immediate, absl::string_view operation);
  Transaction(Transaction&& other) noexcept : db_(other.db_), done_(other.done_) {
    other.done_ = true;
  }
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction();
  absl::Status Commit(absl::string_view operation);

 private:
  explicit Transaction(Db* db) : db_(db) {}
  Db* db_;
  bool done_ = false;
};

}  // namespace kubetrain::storage_internal

#endif  // KUBETRAIN_STORAGE_SRC_SQLITE_H_
