#include "store/sqlite/migrations.hpp"

#include <array>
#include <ctime>
#include <string>

namespace gpuhub::store::sqlite {
namespace {

// Append new migrations at the end; never change one that has shipped.
constexpr std::array kMigrations = {
    Migration{1, R"sql(
CREATE TABLE users (
  id            INTEGER PRIMARY KEY AUTOINCREMENT,
  account       TEXT NOT NULL UNIQUE,
  password_hash TEXT NOT NULL,
  nickname      TEXT NOT NULL,
  email         TEXT,
  phone         TEXT,
  role          TEXT NOT NULL CHECK (role IN ('user', 'admin')),
  photo_kind    TEXT CHECK (photo_kind IS NULL OR photo_kind IN ('upload', 'preset')),
  photo_ref     TEXT,
  photo_type    TEXT,
  photo_version TEXT,
  created_at    INTEGER NOT NULL
);
CREATE TABLE revoked_tokens (
  jti        TEXT PRIMARY KEY,
  expires_at INTEGER NOT NULL
);
CREATE INDEX revoked_tokens_expires_at ON revoked_tokens (expires_at);
)sql"},
    Migration{2, R"sql(
CREATE TABLE machines (
  id         TEXT PRIMARY KEY,
  token_hash TEXT NOT NULL UNIQUE,
  created_at INTEGER NOT NULL,
  last_seen  INTEGER,
  ip         TEXT NOT NULL DEFAULT ''
);
)sql"},
    // ports: a JSON array such as [{"container":22,"host":40022}]. image_id has
    // no ON DELETE action, which (foreign keys being immediate) refuses to
    // delete an image a container names, as RESTRICT would, but reports
    // SQLITE_CONSTRAINT_FOREIGNKEY where RESTRICT reports
    // SQLITE_CONSTRAINT_TRIGGER. The unique index on (user_id, machine_id,
    // name) serves lookups by user as well.
    Migration{3, R"sql(
CREATE TABLE images (
  id          INTEGER PRIMARY KEY AUTOINCREMENT,
  name        TEXT NOT NULL,
  image       TEXT NOT NULL,
  description TEXT NOT NULL,
  created_at  INTEGER NOT NULL
);
CREATE TABLE containers (
  id         INTEGER PRIMARY KEY AUTOINCREMENT,
  user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
  account    TEXT NOT NULL,
  machine_id TEXT NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
  name       TEXT NOT NULL,
  image_id   INTEGER NOT NULL REFERENCES images (id),
  image      TEXT NOT NULL,
  status     TEXT NOT NULL,
  ports      TEXT NOT NULL,
  runtime_id TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  UNIQUE (user_id, machine_id, name)
);
CREATE INDEX containers_machine_id ON containers (machine_id);
CREATE INDEX containers_image_id ON containers (image_id);
)sql"},
    // Task times are in milliseconds since the epoch; gpus_requested and
    // gpu_ids are JSON arrays of GPU indexes such as [0,2]. user_id and
    // container_id are no foreign keys: a task outlives its user and container
    // as history (their ids are never reused). machine_id cascades, but
    // DeleteMachine first refuses while a task there is queued or running.
    // tasks_live, partial, holds only the tasks that matter to the scheduler
    // (queued, running, or ended with their GPUs not released yet), so it stays
    // small however long the history grows; it serves DeleteMachine's check
    // and the ListTasks filters on live tasks. tasks_machine_end and
    // tasks_user_end serve the listings by machine and by user, "ended since"
    // included, and the machine's cascade; tasks_end, partial, the "ended
    // since" listing of all tasks, and takes a task only once it has ended.
    Migration{4, R"sql(
CREATE TABLE tasks (
  id             INTEGER PRIMARY KEY AUTOINCREMENT,
  user_id        INTEGER NOT NULL,
  account        TEXT NOT NULL,
  machine_id     TEXT NOT NULL REFERENCES machines (id) ON DELETE CASCADE,
  container_id   INTEGER NOT NULL,
  containername  TEXT NOT NULL,
  command        TEXT NOT NULL,
  duration_ms    INTEGER NOT NULL,
  gpu_count      INTEGER NOT NULL,
  gpus_requested TEXT NOT NULL,
  gpu_ids        TEXT NOT NULL,
  status         TEXT NOT NULL,
  submit_ms      INTEGER NOT NULL,
  start_ms       INTEGER,
  end_ms         INTEGER,
  exit_code      INTEGER,
  released       INTEGER NOT NULL CHECK (released IN (0, 1))
);
CREATE INDEX tasks_live ON tasks (machine_id, user_id)
  WHERE status IN ('queued', 'running') OR released = 0;
CREATE INDEX tasks_machine_end ON tasks (machine_id, end_ms);
CREATE INDEX tasks_user_end ON tasks (user_id, end_ms);
CREATE INDEX tasks_end ON tasks (end_ms) WHERE end_ms IS NOT NULL;
)sql"},
};

Status Fail(sqlite3* db, std::string_view what) {
  return Internal(std::string(what) + ": " + sqlite3_errmsg(db));
}

// Runs constant SQL (possibly several statements) with no bound values.
Status Exec(sqlite3* db, const char* sql, std::string_view what) {
  if (sqlite3_exec(db, sql, nullptr, nullptr, nullptr) != SQLITE_OK) return Fail(db, what);
  return Status::Ok();
}

// The highest applied version, 0 if none.
Result<int64_t> CurrentVersion(sqlite3* db) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", -1, &stmt,
                         nullptr) != SQLITE_OK) {
    return Error(Fail(db, "read schema version").error());
  }
  Result<int64_t> result = Internal("read schema version: no row");
  if (sqlite3_step(stmt) == SQLITE_ROW) {
    result = sqlite3_column_int64(stmt, 0);
  } else {
    result = Fail(db, "read schema version").error();
  }
  sqlite3_finalize(stmt);
  return result;
}

// Applies one migration and records it, in one transaction.
Status ApplyOne(sqlite3* db, const Migration& m) {
  const std::string what = "schema migration " + std::to_string(m.version);
  if (Status s = Exec(db, "BEGIN IMMEDIATE", what); !s.ok()) return s;
  Status status = [&]() -> Status {
    // Another process may have applied it since we looked; the write lock
    // taken by BEGIN IMMEDIATE makes this check final.
    Result<int64_t> current = CurrentVersion(db);
    if (!current.ok()) return current.error();
    if (*current >= m.version) return Exec(db, "COMMIT", what);
    const std::string sql(m.sql);
    if (Status s = Exec(db, sql.c_str(), what); !s.ok()) return s;
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db, "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                           -1, &stmt, nullptr) != SQLITE_OK) {
      return Fail(db, what);
    }
    sqlite3_bind_int64(stmt, 1, m.version);
    sqlite3_bind_int64(stmt, 2, static_cast<int64_t>(std::time(nullptr)));
    const int rc = sqlite3_step(stmt);
    Status step = rc == SQLITE_DONE ? Status::Ok() : Fail(db, what);
    sqlite3_finalize(stmt);
    if (!step.ok()) return step;
    return Exec(db, "COMMIT", what);
  }();
  if (!status.ok() && !sqlite3_get_autocommit(db)) {
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
  }
  return status;
}

}  // namespace

std::span<const Migration> Migrations() { return kMigrations; }

Status ApplyMigrations(sqlite3* db, std::span<const Migration> migrations) {
  for (size_t i = 0; i < migrations.size(); ++i) {
    const int64_t previous = i == 0 ? 0 : migrations[i - 1].version;
    if (migrations[i].version <= previous) {
      return Internal("schema migrations out of order at version " +
                      std::to_string(migrations[i].version));
    }
  }
  if (Status s = Exec(db,
                      "CREATE TABLE IF NOT EXISTS schema_migrations ("
                      "version INTEGER PRIMARY KEY, applied_at INTEGER)",
                      "create schema_migrations");
      !s.ok()) {
    return s;
  }
  Result<int64_t> current = CurrentVersion(db);
  if (!current.ok()) return current.error();
  const int64_t known = migrations.empty() ? 0 : migrations.back().version;
  if (*current > known) {
    return Internal("database schema version " + std::to_string(*current) +
                    " is newer than this gpuhub knows (" + std::to_string(known) + ")");
  }
  for (const Migration& m : migrations) {
    if (m.version <= *current) continue;
    if (Status s = ApplyOne(db, m); !s.ok()) return s;
  }
  return Status::Ok();
}

}  // namespace gpuhub::store::sqlite
