#include "sqlite.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace kubetrain::storage_internal {
namespace {

absl::StatusCode CodeFor(int rc) {
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return absl::StatusCode::kUnavailable;
    case SQLITE_CONSTRAINT:
      return (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
                 ? absl::StatusCode::kAlreadyExists
                 : absl::StatusCode::kFailedPrecondition;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::StatusCode::kDataLoss;
    case SQLITE_FULL:
      return absl::StatusCode::kResourceExhausted;
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_READONLY:
    case SQLITE_AUTH:
      return absl::StatusCode::kPermissionDenied;
    default:
      return absl::StatusCode::kInternal;
  }
}

std::string Hint(int rc) {
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return " (another process holds the workspace lock; retry)";
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return " (the workspace database is damaged or not a kubetrain workspace)";
    case SQLITE_FULL:
      return " (the disk is full)";
    case SQLITE_CANTOPEN:
    case SQLITE_PERM:
    case SQLITE_READONLY:
      return " (check that the directory exists and is writable by you)";
    default:
      return "";
  }
}

}  // namespace

absl::Status Db::Error(int rc, absl::string_view operation) const {
  const char* detail = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
  return absl::Status(CodeFor(rc), absl::StrCat("workspace ", path_, ": ", operation, ": ", detail,
                                                " [sqlite ", rc, "]", Hint(rc)));
}

absl::StatusOr<std::unique_ptr<Db>> Db::Open(const std::string& path, int busy_timeout_ms) {
  sqlite3* raw = nullptr;
  int rc =
      sqlite3_open_v2(path.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  std::unique_ptr<Db> db(new Db(raw, path));
  if (rc != SQLITE_OK) return db->Error(rc, "open");
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, busy_timeout_ms);
  // journal_mode=WAL is persistent in the file; setting it needs a brief exclusive lock, which the
  // busy handler waits for when several processes open a new workspace at once.
  if (auto s = db->Exec("PRAGMA journal_mode=WAL", "enable WAL mode"); !s.ok()) return s;
  if (auto s = db->Exec("PRAGMA synchronous=NORMAL", "set synchronous"); !s.ok()) return s;
  if (auto s = db->Exec("PRAGMA foreign_keys=ON", "enable foreign keys"); !s.ok()) return s;
  return db;
}

Db::~Db() {
  if (db_ != nullptr) sqlite3_close_v2(db_);
}

absl::Status Db::Exec(absl::string_view sql, absl::string_view operation) {
  std::string text(sql);
  int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return Error(rc, operation);
  return absl::OkStatus();
}

absl::StatusOr<Statement> Db::Prepare(absl::string_view sql, absl::string_view operation) {
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v2(db_, sql.data(), static_cast<int>(sql.size()), &stmt, nullptr);
  if (rc != SQLITE_OK) return Error(rc, operation);
  return Statement(this, stmt, std::string(sql));
}

Statement::Statement(Statement&& other) noexcept
    : db_(other.db_), stmt_(other.stmt_), sql_(std::move(other.sql_)) {
  other.stmt_ = nullptr;
}

Statement::~Statement() {
  if (stmt_ != nullptr) sqlite3_finalize(stmt_);
}

Statement& Statement::Bind(int index, int64_t value) {
  sqlite3_bind_int64(stmt_, index, value);
  return *this;
}

Statement& Statement::BindDouble(int index, double value) {
  sqlite3_bind_double(stmt_, index, value);
  return *this;
}

Statement& Statement::BindNull(int index) {
  sqlite3_bind_null(stmt_, index);
  return *this;
}

Statement& Statement::Bind(int index, absl::string_view text) {
  sqlite3_bind_text64(stmt_, index, text.data(), text.size(), SQLITE_TRANSIENT, SQLITE_UTF8);
  return *this;
}

Statement& Statement::BindBlob(int index, absl::string_view bytes) {
  // A zero-length blob must still be a BLOB, not NULL: pass a non-null pointer.
  static const char kEmpty = 0;
  sqlite3_bind_blob64(stmt_, index, bytes.empty() ? &kEmpty : bytes.data(), bytes.size(),
                      SQLITE_TRANSIENT);
  return *this;
}

absl::StatusOr<bool> Statement::Step(absl::string_view operation) {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  absl::Status status = db_->Error(rc, operation);
  sqlite3_reset(stmt_);
  return status;
}

absl::Status Statement::Run(absl::string_view operation) {
  while (true) {
    absl::StatusOr<bool> row = Step(operation);
    if (!row.ok()) return row.status();
    if (!*row) return absl::OkStatus();
  }
}

void Statement::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

std::string Statement::ColumnText(int index) const {
  const unsigned char* text = sqlite3_column_text(stmt_, index);
  int size = sqlite3_column_bytes(stmt_, index);
  if (text == nullptr) return std::string();
  return std::string(reinterpret_cast<const char*>(text), static_cast<size_t>(size));
}

std::string Statement::ColumnBlob(int index) const {
  const void* data = sqlite3_column_blob(stmt_, index);
  int size = sqlite3_column_bytes(stmt_, index);
  if (data == nullptr) return std::string();
  return std::string(static_cast<const char*>(data), static_cast<size_t>(size));
}

absl::StatusOr<Transaction> Transaction::Begin(Db* db, bool immediate,
                                               absl::string_view operation) {
  absl::Status status = db->Exec(immediate ? "BEGIN IMMEDIATE" : "BEGIN DEFERRED",
                                 absl::StrCat(operation, ": begin transaction"));
  if (!status.ok()) return status;
  return Transaction(db);
}

Transaction::~Transaction() {
  if (!done_) db_->Exec("ROLLBACK", "rollback").IgnoreError();
}

absl::Status Transaction::Commit(absl::string_view operation) {
  absl::Status status = db_->Exec("COMMIT", absl::StrCat(operation, ": commit"));
  if (status.ok()) done_ = true;  // on failure the destructor rolls back
  return status;
}

}  // namespace kubetrain::storage_internal
