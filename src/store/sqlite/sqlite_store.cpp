#include "store/sqlite/sqlite_store.hpp"

#include <string_view>
#include <utility>

#include "common/time_util.hpp"
#include "store/sqlite/migrations.hpp"

namespace gpuhub::store::sqlite {
namespace {

constexpr std::string_view kUserColumns =
    "id, account, password_hash, nickname, email, phone, role, photo_kind, photo_ref, "
    "photo_type, photo_version, created_at";

Error DbError(sqlite3* db, std::string_view what) {
  return Internal(std::string(what) + ": " + sqlite3_errmsg(db));
}

// Resets and unbinds a reused statement when the scope ends, so it holds no
// read transaction and no pointers to the caller's strings.
class ScopedReset {
 public:
  explicit ScopedReset(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ~ScopedReset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  ScopedReset(const ScopedReset&) = delete;
  ScopedReset& operator=(const ScopedReset&) = delete;

 private:
  sqlite3_stmt* stmt_;
};

// Binders; the text must outlive the step (SQLITE_STATIC): ScopedReset clears
// the bindings before the caller's strings go away.
int BindText(sqlite3_stmt* stmt, int index, std::string_view text) {
  return sqlite3_bind_text64(stmt, index, text.data(), text.size(), nullptr, SQLITE_UTF8);
}
int BindOptionalText(sqlite3_stmt* stmt, int index, const std::optional<std::string>& text) {
  return text ? BindText(stmt, index, *text) : sqlite3_bind_null(stmt, index);
}

std::string ColumnText(sqlite3_stmt* stmt, int column) {
  const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, column));
  if (text == nullptr) return {};
  return std::string(text, static_cast<size_t>(sqlite3_column_bytes(stmt, column)));
}
std::optional<std::string> ColumnOptionalText(sqlite3_stmt* stmt, int column) {
  if (sqlite3_column_type(stmt, column) == SQLITE_NULL) return std::nullopt;
  return ColumnText(stmt, column);
}

std::string_view PhotoKindName(Photo::Kind kind) {
  return kind == Photo::Kind::kUpload ? "upload" : "preset";
}

// Binds the mutable user fields to parameters first..first+8, in the order
// password_hash, nickname, email, phone, role, photo_kind, photo_ref,
// photo_type, photo_version. Returns the first failing sqlite code or SQLITE_OK.
int BindUserFields(sqlite3_stmt* stmt, int first, const User& user) {
  int i = first;
  int rc = SQLITE_OK;
  auto bind = [&](int r) {
    if (rc == SQLITE_OK) rc = r;
    ++i;
  };
  bind(BindText(stmt, i, user.password_hash));
  bind(BindText(stmt, i, user.nickname));
  bind(BindOptionalText(stmt, i, user.email));
  bind(BindOptionalText(stmt, i, user.phone));
  bind(BindText(stmt, i, user.role));
  if (user.photo) {
    bind(BindText(stmt, i, PhotoKindName(user.photo->kind)));
    bind(BindText(stmt, i, user.photo->ref));
    bind(BindText(stmt, i, user.photo->content_type));
    bind(BindText(stmt, i, user.photo->version));
  } else {
    for (int k = 0; k < 4; ++k) bind(sqlite3_bind_null(stmt, i));
  }
  return rc;
}

// Reads a row laid out as kUserColumns.
Result<User> ReadUser(sqlite3_stmt* stmt) {
  User user;
  user.id = sqlite3_column_int64(stmt, 0);
  user.account = ColumnText(stmt, 1);
  user.password_hash = ColumnText(stmt, 2);
  user.nickname = ColumnText(stmt, 3);
  user.email = ColumnOptionalText(stmt, 4);
  user.phone = ColumnOptionalText(stmt, 5);
  user.role = ColumnText(stmt, 6);
  if (std::optional<std::string> kind = ColumnOptionalText(stmt, 7)) {
    Photo photo;
    if (*kind == "upload") {
      photo.kind = Photo::Kind::kUpload;
    } else if (*kind == "preset") {
      photo.kind = Photo::Kind::kPreset;
    } else {
      return Internal("user " + std::to_string(user.id) + " has unknown photo kind " + *kind);
    }
    photo.ref = ColumnText(stmt, 8);
    photo.content_type = ColumnText(stmt, 9);
    photo.version = ColumnText(stmt, 10);
    user.photo = std::move(photo);
  }
  user.created_at = FromUnixSeconds(sqlite3_column_int64(stmt, 11));
  return user;
}

Result<StmtPtr> Prepare(sqlite3* db, std::string_view sql) {
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT,
                         &stmt, nullptr) != SQLITE_OK) {
    return DbError(db, "prepare \"" + std::string(sql) + "\"");
  }
  return StmtPtr(stmt);
}

Result<Statements> PrepareAll(sqlite3* db) {
  Statements s;
  struct Entry {
    StmtPtr* slot;
    std::string sql;
  };
  const Entry entries[] = {
      {&s.create_user,
       "INSERT INTO users (password_hash, nickname, email, phone, role, photo_kind, photo_ref, "
       "photo_type, photo_version, account, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"},
      {&s.list_users, "SELECT " + std::string(kUserColumns) + " FROM users ORDER BY id"},
      {&s.update_user,
       "UPDATE users SET password_hash = ?, nickname = ?, email = ?, phone = ?, role = ?, "
       "photo_kind = ?, photo_ref = ?, photo_type = ?, photo_version = ? WHERE id = ?"},
      {&s.delete_user, "DELETE FROM users WHERE id = ?"},
      // Revoking again keeps the later expiry.
      {&s.revoke_token,
       "INSERT INTO revoked_tokens (jti, expires_at) VALUES (?, ?) ON CONFLICT (jti) DO UPDATE "
       "SET expires_at = MAX(expires_at, excluded.expires_at)"},
      {&s.list_revoked_tokens,
       "SELECT jti FROM revoked_tokens WHERE expires_at > ? ORDER BY expires_at, jti"},
      {&s.prune_revoked_tokens, "DELETE FROM revoked_tokens WHERE expires_at <= ?"},
      {&s.create_machine,
       "INSERT INTO machines (id, token_hash, created_at, last_seen, ip) VALUES (?, ?, ?, ?, ?)"},
      {&s.list_machines,
       "SELECT id, token_hash, created_at, last_seen, ip FROM machines ORDER BY id"},
      {&s.delete_machine, "DELETE FROM machines WHERE id = ?"},
      {&s.set_machine_token, "UPDATE machines SET token_hash = ? WHERE id = ?"},
      {&s.set_machine_seen, "UPDATE machines SET last_seen = ?, ip = ? WHERE id = ?"},
  };
  for (const Entry& e : entries) {
    Result<StmtPtr> stmt = Prepare(db, e.sql);
    if (!stmt.ok()) return stmt.error();
    *e.slot = std::move(stmt).value();
  }
  return s;
}

// Runs a PRAGMA that answers with one text row and returns that text.
Result<std::string> PragmaText(sqlite3* db, std::string_view sql) {
  Result<StmtPtr> stmt = Prepare(db, sql);
  if (!stmt.ok()) return stmt.error();
  if (sqlite3_step(stmt->get()) != SQLITE_ROW) return DbError(db, sql);
  return ColumnText(stmt->get(), 0);
}

Status Exec(sqlite3* db, const char* sql) {
  if (sqlite3_exec(db, sql, nullptr, nullptr, nullptr) != SQLITE_OK) return DbError(db, sql);
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<SqliteStore>> SqliteStore::Open(const std::string& path) {
  sqlite3* raw = nullptr;
  const int rc =
      sqlite3_open_v2(path.c_str(), &raw,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  DbPtr db(raw);  // closed on every return below unless handed to the store
  if (rc != SQLITE_OK) {
    return Internal("open " + path + ": " +
                    (db ? std::string(sqlite3_errmsg(db.get())) : sqlite3_errstr(rc)));
  }
  sqlite3_extended_result_codes(db.get(), 1);
  sqlite3_busy_timeout(db.get(), kBusyTimeoutMs);

  Result<std::string> mode = PragmaText(db.get(), "PRAGMA journal_mode = WAL");
  if (!mode.ok()) return mode.error();
  if (*mode != "wal")
    return Internal("open " + path + ": cannot use WAL, journal_mode is " + *mode);
  if (Status s = Exec(db.get(), "PRAGMA synchronous = FULL"); !s.ok()) return s.error();
  if (Status s = Exec(db.get(), "PRAGMA foreign_keys = ON"); !s.ok()) return s.error();

  if (Status s = ApplyMigrations(db.get(), Migrations()); !s.ok()) return s.error();

  Result<Statements> stmts = PrepareAll(db.get());
  if (!stmts.ok()) return stmts.error();
  return std::make_unique<SqliteStore>(std::move(db), std::move(stmts).value());
}

SqliteStore::SqliteStore(DbPtr db, Statements statements)
    : db_(std::move(db)), stmts_(std::move(statements)) {}

Result<User> SqliteStore::CreateUser(const User& user) {
  std::lock_guard lock(mu_);
  sqlite3_stmt* stmt = stmts_.create_user.get();
  ScopedReset reset(stmt);
  const int64_t created_at = ToUnixSeconds(user.created_at);
  if (BindUserFields(stmt, 1, user) != SQLITE_OK || BindText(stmt, 10, user.account) != SQLITE_OK ||
      sqlite3_bind_int64(stmt, 11, created_at) != SQLITE_OK) {
    return DbError(db_.get(), "create user");
  }
  if (sqlite3_step(stmt) != SQLITE_DONE) {
    if (sqlite3_extended_errcode(db_.get()) == SQLITE_CONSTRAINT_UNIQUE) {
      return Conflict("Account already exists");
    }
    return DbError(db_.get(), "create user");
  }
  User created = user;
  created.id = sqlite3_last_insert_rowid(db_.get());
  created.created_at = FromUnixSeconds(created_at);  // as stored: whole seconds
  return created;
}

Result<std::vector<User>> SqliteStore::ListUsers() {
  std::lock_guard lock(mu_);
  sqlite3_stmt* stmt = stmts_.list_users.get();
  ScopedReset reset(stmt);
  std::vector<User> users;
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    Result<User> user = ReadUser(stmt);
    if (!user.ok()) return user.error();
    users.push_back(std::move(user).value());
  }
  if (rc != SQLITE_DONE) return DbError(db_.get(), "list users");
  return users;
}

Status SqliteStore::UpdateUser(const User& user) {
  std::lock_guard lock(mu_);
  sqlite3_stmt* stmt = stmts_.update_user.get();
  ScopedReset reset(stmt);
  if (BindUserFields(stmt, 1, user) != SQLITE_OK ||
      sqlite3_bind_int64(stmt, 10, user.id) != SQLITE_OK) {
    return DbError(db_.get(), "update user");
  }
  if (sqlite3_step(stmt) != SQLITE_DONE) return DbError(db_.get(), "update user");
  if (sqlite3_changes(db_.get()) == 0) return NotFound("User not found");
  return Status::Ok();
}

Status SqliteStore::DeleteUser(int64_t id) {
  std::lock_guard lock(mu_);
  sqlite3_stmt* stmt = stmts_.delete_user.get();
  ScopedReset reset(stmt);
  if (sqlite3_bind_int64(stmt, 1, id) != SQLITE_OK) return DbError(db_.get(), "delete user");
  if (sqlite3_step(stmt) != SQLITE_DONE) return DbError(db_.get(), "delete user");
  if (sqlite3_changes(db_.get()) == 0) return NotFound("User not found");
  return Status::Ok();
}

Status SqliteStore::RevokeToken(const std::string& jti, TimePoint expires_at) {
  std::lock_guard lock(mu_);
  sqlite3_stmt* stmt = stmts_.revoke_token.get();
  ScopedReset reset(stmt);
  if (BindText(stmt, 1, jti) != SQLITE_OK ||
      sqlite3_bind_int64(stmt, 2, ToUnixSeconds(expires_at)) != SQLITE_OK) {
    return DbError(db_.get(), "revoke token");
  }
  if (sqlite3_step(stmt) != SQLITE_DONE) return DbError(db_.get(), "revoke token");
  return Status::Ok();
}

Result<std::vector<std::string>> SqliteStore::ListRevokedTokens(TimePoint now) {
  std::lock_guard lock(mu_);
  sqlite3_stmt* stmt = stmts_.list_revoked_tokens.get();
  ScopedReset reset(stmt);
  if (sqlite3_bind_int64(stmt, 1, ToUnixSeconds(now)) != SQLITE_OK) {
    return DbError(db_.get(), "list revoked tokens");
  }
  std::vector<std::string> jtis;
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) jtis.push_back(ColumnText(stmt, 0));
  if (rc != SQLITE_DONE) return DbError(db_.get(), "list revoked tokens");
  return jtis;
}

Status SqliteStore::PruneRevokedTokens(TimePoint now) {
  std::lock_guard lock(mu_);
  sqlite3_stmt* stmt = stmts_.prune_revoked_tokens.get();
  ScopedReset reset(stmt);
  if (sqlite3_bind_int64(stmt, 1, ToUnixSeconds(now)) != SQLITE_OK) {
    return DbError(db_.get(), "prune revoked tokens");
  }
  if (sqlite3_step(stmt) != SQLITE_DONE) return DbError(db_.get(), "prune revoked tokens");
  return Status::Ok();
}

Status SqliteStore::CreateMachine(const Machine& m) {
  std::lock_guard lock(mu_);
  sqlite3_stmt* stmt = stmts_.create_machine.get();
  ScopedReset reset(stmt);
  int rc = BindText(stmt, 1, m.id);
  if (rc == SQLITE_OK) rc = BindText(stmt, 2, m.token_hash);
  if (rc == SQLITE_OK) rc = sqlite3_bind_int64(stmt, 3, ToUnixSeconds(m.created_at));
  if (rc == SQLITE_OK) {
    rc = m.last_seen ? sqlite3_bind_int64(stmt, 4, ToUnixSeconds(*m.last_seen))
                     : sqlite3_bind_null(stmt, 4);
  }
  if (rc == SQLITE_OK) rc = BindText(stmt, 5, m.ip);
  if (rc != SQLITE_OK) return DbError(db_.get(), "create machine");
  if (sqlite3_step(stmt) != SQLITE_DONE) {
    if (sqlite3_extended_errcode(db_.get()) == SQLITE_CONSTRAINT_PRIMARYKEY) {
      return Conflict("Machine already exists");
    }
    return DbError(db_.get(), "create machine");
  }
  return Status::Ok();
}

Result<std::vector<Machine>> SqliteStore::ListMachines() {
  std::lock_guard lock(mu_);
  sqlite3_stmt* stmt = stmts_.list_machines.get();
  ScopedReset reset(stmt);
  std::vector<Machine> machines;
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    Machine m;
    m.id = ColumnText(stmt, 0);
    m.token_hash = ColumnText(stmt, 1);
    m.created_at = FromUnixSeconds(sqlite3_column_int64(stmt, 2));
    if (sqlite3_column_type(stmt, 3) != SQLITE_NULL) {
      m.last_seen = FromUnixSeconds(sqlite3_column_int64(stmt, 3));
    }
    m.ip = ColumnText(stmt, 4);
    machines.push_back(std::move(m));
  }
  if (rc != SQLITE_DONE) return DbError(db_.get(), "list machines");
  return machines;
}

Status SqliteStore::StepMachineChange(sqlite3_stmt* stmt, std::string_view what) {
  if (sqlite3_step(stmt) != SQLITE_DONE) return DbError(db_.get(), what);
  if (sqlite3_changes(db_.get()) == 0) return NotFound("Machine not found");
  return Status::Ok();
}

Status SqliteStore::DeleteMachine(const std::string& id) {
  std::lock_guard lock(mu_);
  sqlite3_stmt* stmt = stmts_.delete_machine.get();
  ScopedReset reset(stmt);
  if (BindText(stmt, 1, id) != SQLITE_OK) return DbError(db_.get(), "delete machine");
  return StepMachineChange(stmt, "delete machine");
}

Status SqliteStore::SetMachineToken(const std::string& id, const std::string& token_hash) {
  std::lock_guard lock(mu_);
  sqlite3_stmt* stmt = stmts_.set_machine_token.get();
  ScopedReset reset(stmt);
  if (BindText(stmt, 1, token_hash) != SQLITE_OK || BindText(stmt, 2, id) != SQLITE_OK) {
    return DbError(db_.get(), "set machine token");
  }
  return StepMachineChange(stmt, "set machine token");
}

Status SqliteStore::SetMachineSeen(const std::string& id, TimePoint last_seen,
                                   const std::string& ip) {
  std::lock_guard lock(mu_);
  sqlite3_stmt* stmt = stmts_.set_machine_seen.get();
  ScopedReset reset(stmt);
  if (sqlite3_bind_int64(stmt, 1, ToUnixSeconds(last_seen)) != SQLITE_OK ||
      BindText(stmt, 2, ip) != SQLITE_OK || BindText(stmt, 3, id) != SQLITE_OK) {
    return DbError(db_.get(), "set machine seen");
  }
  return StepMachineChange(stmt, "set machine seen");
}

}  // namespace gpuhub::store::sqlite

namespace gpuhub::store {

Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path) {
  Result<std::unique_ptr<sqlite::SqliteStore>> store = sqlite::SqliteStore::Open(path);
  if (!store.ok()) return store.error();
  return std::unique_ptr<Store>(std::move(store).value());
}

}  // namespace gpuhub::store
