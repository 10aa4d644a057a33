#include "store/sqlite/sqlite_store.hpp"

#include <array>
#include <chrono>
#include <nlohmann/json.hpp>
#include <optional>
#include <string_view>
#include <utility>

#include "common/time_util.hpp"
#include "store/sqlite/migrations.hpp"

namespace gpuhub::store::sqlite {
namespace {

constexpr std::string_view kUserColumns =
    "id, account, password_hash, nickname, email, phone, role, photo_kind, photo_ref, "
    "photo_type, photo_version, created_at";
constexpr std::string_view kMachineColumns = "id, token_hash, created_at, last_seen, ip";
constexpr std::string_view kImageColumns = "id, name, image, description, created_at";
constexpr std::string_view kContainerColumns =
    "id, user_id, account, machine_id, name, image_id, image, status, ports, runtime_id, "
    "created_at";
constexpr std::string_view kTaskColumns =
    "id, user_id, account, machine_id, container_id, containername, command, duration_ms, "
    "gpu_count, gpus_requested, gpu_ids, status, submit_ms, start_ms, end_ms, exit_code, released";
// A task that holds or awaits GPUs. Written exactly as in the WHERE of the
// partial index tasks_live (migration 4), which a query can use only if its
// own WHERE repeats that expression or a part of its OR.
constexpr std::string_view kActive = "status IN ('queued', 'running')";

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
// the bindings before the caller's strings go away. A nullopt binds NULL.
int BindValue(sqlite3_stmt* stmt, int index, std::string_view text) {
  return sqlite3_bind_text64(stmt, index, text.data(), text.size(), nullptr, SQLITE_UTF8);
}
int BindValue(sqlite3_stmt* stmt, int index, int64_t value) {
  return sqlite3_bind_int64(stmt, index, value);
}
template <typename T>
int BindValue(sqlite3_stmt* stmt, int index, const std::optional<T>& value) {
  return value ? BindValue(stmt, index, *value) : sqlite3_bind_null(stmt, index);
}

// Binds `values` to parameters 1..N in order. Returns the first failing sqlite
// code or SQLITE_OK.
template <typename... Values>
int BindAll([[maybe_unused]] sqlite3_stmt* stmt, const Values&... values) {
  [[maybe_unused]] int index = 0;
  int rc = SQLITE_OK;
  ((rc = rc == SQLITE_OK ? BindValue(stmt, ++index, values) : rc), ...);
  return rc;
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
TimePoint ColumnTime(sqlite3_stmt* stmt, int column) {
  return FromUnixSeconds(sqlite3_column_int64(stmt, column));
}

// Task times: milliseconds since the epoch, rounded down.
int64_t ToUnixMillis(TimePoint t) {
  return std::chrono::floor<std::chrono::milliseconds>(t.time_since_epoch()).count();
}
TimePoint FromUnixMillis(int64_t ms) { return TimePoint(std::chrono::milliseconds(ms)); }
std::optional<int64_t> ToUnixMillis(const std::optional<TimePoint>& t) {
  if (!t) return std::nullopt;
  return ToUnixMillis(*t);
}
std::optional<TimePoint> ColumnOptionalMillis(sqlite3_stmt* stmt, int column) {
  if (sqlite3_column_type(stmt, column) == SQLITE_NULL) return std::nullopt;
  return FromUnixMillis(sqlite3_column_int64(stmt, column));
}

// How to judge a statement that returns no rows.
struct WriteOp {
  std::string_view what;            // names the operation in kInternal errors
  std::string_view not_found = {};  // if set: kNotFound with it when no row changed
  int conflict_code = 0;            // an extended result code the caller caused...
  std::string_view conflict = {};   // ...and the kConflict message it becomes
};

// Steps a bound statement that returns no rows and judges it per `op`.
Status Step(sqlite3_stmt* stmt, const WriteOp& op) {
  sqlite3* db = sqlite3_db_handle(stmt);
  if (sqlite3_step(stmt) != SQLITE_DONE) {
    if (op.conflict_code != 0 && sqlite3_extended_errcode(db) == op.conflict_code) {
      return Conflict(std::string(op.conflict));
    }
    return DbError(db, op.what);
  }
  if (!op.not_found.empty() && sqlite3_changes(db) == 0) return NotFound(std::string(op.not_found));
  return Status::Ok();
}

// Binds `values` to the reused `stmt`, steps it per `op`, and resets it.
template <typename... Values>
Status Write(sqlite3_stmt* stmt, const WriteOp& op, const Values&... values) {
  ScopedReset reset(stmt);
  if (BindAll(stmt, values...) != SQLITE_OK) return DbError(sqlite3_db_handle(stmt), op.what);
  return Step(stmt, op);
}

// Binds `values` to the reused query `stmt`, reads every row with `read`, and
// resets it.
template <typename T, typename... Values>
Result<std::vector<T>> Query(sqlite3_stmt* stmt, std::string_view what,
                             Result<T> (*read)(sqlite3_stmt*), const Values&... values) {
  ScopedReset reset(stmt);
  if (BindAll(stmt, values...) != SQLITE_OK) return DbError(sqlite3_db_handle(stmt), what);
  std::vector<T> rows;
  int rc;
  while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
    Result<T> row = read(stmt);
    if (!row.ok()) return row.error();
    rows.push_back(std::move(row).value());
  }
  if (rc != SQLITE_DONE) return DbError(sqlite3_db_handle(stmt), what);
  return rows;
}

// `row` as the insert just stepped stored it: with its new id, and created_at
// in whole seconds.
template <typename Row>
Row AsInserted(sqlite3* db, Row row) {
  row.id = sqlite3_last_insert_rowid(db);
  row.created_at = FromUnixSeconds(ToUnixSeconds(row.created_at));
  return row;
}

Status Exec(sqlite3* db, const char* sql) {
  if (sqlite3_exec(db, sql, nullptr, nullptr, nullptr) != SQLITE_OK) return DbError(db, sql);
  return Status::Ok();
}

// Runs `body` (returning a Status or Result) inside BEGIN IMMEDIATE and
// commits if it succeeds; rolls back if it or the commit fails.
template <typename Body>
auto InWriteTransaction(sqlite3* db, Body body) -> decltype(body()) {
  if (Status s = Exec(db, "BEGIN IMMEDIATE"); !s.ok()) return s.error();
  decltype(body()) result = body();
  if (result.ok()) {
    if (Status s = Exec(db, "COMMIT"); !s.ok()) result = s.error();
  }
  if (!sqlite3_get_autocommit(db)) sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
  return result;
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
  bind(BindValue(stmt, i, user.password_hash));
  bind(BindValue(stmt, i, user.nickname));
  bind(BindValue(stmt, i, user.email));
  bind(BindValue(stmt, i, user.phone));
  bind(BindValue(stmt, i, user.role));
  if (user.photo) {
    bind(BindValue(stmt, i, PhotoKindName(user.photo->kind)));
    bind(BindValue(stmt, i, user.photo->ref));
    bind(BindValue(stmt, i, user.photo->content_type));
    bind(BindValue(stmt, i, user.photo->version));
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
  user.created_at = ColumnTime(stmt, 11);
  return user;
}

// Reads a row laid out as kMachineColumns.
Result<Machine> ReadMachine(sqlite3_stmt* stmt) {
  Machine m;
  m.id = ColumnText(stmt, 0);
  m.token_hash = ColumnText(stmt, 1);
  m.created_at = ColumnTime(stmt, 2);
  if (sqlite3_column_type(stmt, 3) != SQLITE_NULL) m.last_seen = ColumnTime(stmt, 3);
  m.ip = ColumnText(stmt, 4);
  return m;
}

// Reads a row laid out as kImageColumns.
Result<Image> ReadImage(sqlite3_stmt* stmt) {
  Image image;
  image.id = sqlite3_column_int64(stmt, 0);
  image.name = ColumnText(stmt, 1);
  image.image = ColumnText(stmt, 2);
  image.description = ColumnText(stmt, 3);
  image.created_at = ColumnTime(stmt, 4);
  return image;
}

// Ports as stored in containers.ports: [{"container":22,"host":40022}].
std::string FormatPorts(const std::vector<PortMapping>& ports) {
  nlohmann::json list = nlohmann::json::array();
  for (const PortMapping& p : ports) {
    list.push_back(nlohmann::json{{"container", p.container}, {"host", p.host}});
  }
  return list.dump();
}

// The inverse of FormatPorts; nullopt if `text` is not such a list.
std::optional<std::vector<PortMapping>> ParsePorts(std::string_view text) {
  const nlohmann::json list = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!list.is_array()) return std::nullopt;
  std::vector<PortMapping> ports;
  for (const nlohmann::json& entry : list) {
    const auto container = entry.find("container");
    const auto host = entry.find("host");
    if (container == entry.end() || host == entry.end() || !container->is_number_integer() ||
        !host->is_number_integer()) {
      return std::nullopt;
    }
    ports.push_back({container->get<int>(), host->get<int>()});
  }
  return ports;
}

// Reads a row laid out as kContainerColumns.
Result<Container> ReadContainer(sqlite3_stmt* stmt) {
  Container c;
  c.id = sqlite3_column_int64(stmt, 0);
  c.user_id = sqlite3_column_int64(stmt, 1);
  c.account = ColumnText(stmt, 2);
  c.machine_id = ColumnText(stmt, 3);
  c.name = ColumnText(stmt, 4);
  c.image_id = sqlite3_column_int64(stmt, 5);
  c.image = ColumnText(stmt, 6);
  c.status = ColumnText(stmt, 7);
  std::optional<std::vector<PortMapping>> ports = ParsePorts(ColumnText(stmt, 8));
  if (!ports) return Internal("container " + std::to_string(c.id) + " has malformed ports");
  c.ports = std::move(*ports);
  c.runtime_id = ColumnText(stmt, 9);
  c.created_at = ColumnTime(stmt, 10);
  return c;
}

// kNotFound naming the first of the container's machine, image and user that
// does not exist. `stmt` is Statements::container_refs_exist.
Status CheckContainerRefs(sqlite3_stmt* stmt, const Container& c) {
  ScopedReset reset(stmt);
  if (BindAll(stmt, c.machine_id, c.image_id, c.user_id) != SQLITE_OK ||
      sqlite3_step(stmt) != SQLITE_ROW) {
    return DbError(sqlite3_db_handle(stmt), "create container");
  }
  constexpr std::array<const char*, 3> kMissing = {"Machine not found", "Image not found",
                                                   "User not found"};
  for (int i = 0; i < static_cast<int>(kMissing.size()); ++i) {
    if (sqlite3_column_int(stmt, i) == 0) return NotFound(kMissing[i]);
  }
  return Status::Ok();
}

// GPU indexes as stored in tasks.gpus_requested and tasks.gpu_ids: [0,2].
std::string FormatGpus(const std::vector<int>& gpus) { return nlohmann::json(gpus).dump(); }

// The inverse of FormatGpus; nullopt if `text` is not such a list.
std::optional<std::vector<int>> ParseGpus(std::string_view text) {
  const nlohmann::json list = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (!list.is_array()) return std::nullopt;
  std::vector<int> gpus;
  for (const nlohmann::json& entry : list) {
    if (!entry.is_number_integer()) return std::nullopt;
    gpus.push_back(entry.get<int>());
  }
  return gpus;
}

// Reads a row laid out as kTaskColumns.
Result<Task> ReadTask(sqlite3_stmt* stmt) {
  Task t;
  t.id = sqlite3_column_int64(stmt, 0);
  t.user_id = sqlite3_column_int64(stmt, 1);
  t.account = ColumnText(stmt, 2);
  t.machine_id = ColumnText(stmt, 3);
  t.container_id = sqlite3_column_int64(stmt, 4);
  t.containername = ColumnText(stmt, 5);
  t.command = ColumnText(stmt, 6);
  t.duration = std::chrono::milliseconds(sqlite3_column_int64(stmt, 7));
  t.gpu_count = sqlite3_column_int(stmt, 8);
  std::optional<std::vector<int>> requested = ParseGpus(ColumnText(stmt, 9));
  std::optional<std::vector<int>> gpu_ids = ParseGpus(ColumnText(stmt, 10));
  if (!requested || !gpu_ids) {
    return Internal("task " + std::to_string(t.id) + " has malformed GPUs");
  }
  t.gpus_requested = std::move(*requested);
  t.gpu_ids = std::move(*gpu_ids);
  t.status = ColumnText(stmt, 11);
  t.submit_time = FromUnixMillis(sqlite3_column_int64(stmt, 12));
  t.start_time = ColumnOptionalMillis(stmt, 13);
  t.end_time = ColumnOptionalMillis(stmt, 14);
  if (sqlite3_column_type(stmt, 15) != SQLITE_NULL) t.exit_code = sqlite3_column_int(stmt, 15);
  t.released = sqlite3_column_int(stmt, 16) != 0;
  return t;
}

// `t` as CreateTask stored it: with its new id and times in whole ms.
Task TaskAsInserted(sqlite3* db, Task t) {
  t.id = sqlite3_last_insert_rowid(db);
  t.submit_time = FromUnixMillis(ToUnixMillis(t.submit_time));
  if (t.start_time) t.start_time = FromUnixMillis(ToUnixMillis(*t.start_time));
  if (t.end_time) t.end_time = FromUnixMillis(ToUnixMillis(*t.end_time));
  return t;
}

// kNotFound naming the first of the task's machine and user that does not
// exist. `stmt` is Statements::task_refs_exist.
Status CheckTaskRefs(sqlite3_stmt* stmt, const Task& t) {
  ScopedReset reset(stmt);
  if (BindAll(stmt, t.machine_id, t.user_id) != SQLITE_OK || sqlite3_step(stmt) != SQLITE_ROW) {
    return DbError(sqlite3_db_handle(stmt), "create task");
  }
  if (sqlite3_column_int(stmt, 0) == 0) return NotFound("Machine not found");
  if (sqlite3_column_int(stmt, 1) == 0) return NotFound("User not found");
  return Status::Ok();
}

// Which fields of a TaskFilter are set, as an index into
// Statements::list_tasks: bit 0 user_id, 1 machine_id, 2
// active_or_ended_since, 3 unreleased_only.
constexpr int kTaskListShapes = 16;
int TaskListShape(const TaskFilter& f) {
  return (f.user_id ? 1 : 0) | (f.machine_id ? 2 : 0) | (f.active_or_ended_since ? 4 : 0) |
         (f.unreleased_only ? 8 : 0);
}

// The SELECT for filters of `shape`; see ListTasksSql in the header. The
// filters on live tasks (queued, running, or not released) read the small
// partial index tasks_live, named with INDEXED BY because the planner, having
// no statistics, would rather take machine_id or user_id from the big
// indexes; "ended since" reads tasks_user_end, tasks_machine_end or tasks_end.
// Either way a query reads about as many rows as it returns, however long the
// history. Only the unfiltered listing and those by user or machine alone read
// all of the table or of that user's or machine's tasks.
std::string TaskListSql(int shape) {
  const bool by_user = (shape & 1) != 0;
  const bool by_machine = (shape & 2) != 0;
  const bool since = (shape & 4) != 0;
  const bool unreleased = (shape & 8) != 0;
  // "SELECT ... FROM tasks [INDEXED BY ...] WHERE terms AND user AND machine".
  auto select = [&](std::string_view indexed_by, std::vector<std::string> terms) {
    if (by_user) terms.emplace_back("user_id = ?1");
    if (by_machine) terms.emplace_back("machine_id = ?2");
    std::string sql = "SELECT " + std::string(kTaskColumns) + " FROM tasks";
    if (!indexed_by.empty()) sql.append(" INDEXED BY ").append(indexed_by);
    for (size_t i = 0; i < terms.size(); ++i) {
      sql.append(i == 0 ? " WHERE " : " AND ").append(terms[i]);
    }
    return sql;
  };
  const std::string active(kActive);
  std::string sql;
  if (unreleased) {
    // Live tasks only; "ended since" further narrows those that ended.
    std::vector<std::string> terms = {"(" + active + " OR released = 0)"};
    if (since) terms.push_back("(" + active + " OR end_ms >= ?3)");
    sql = select("tasks_live", std::move(terms));
  } else if (since) {
    // Active tasks, and the others that ended since: disjoint halves. The
    // second names its index too: to save the sort, the planner would rather
    // scan the whole table in id order.
    const std::string_view ended_index = by_user      ? "tasks_user_end"
                                         : by_machine ? "tasks_machine_end"
                                                      : "tasks_end";
    sql = select("tasks_live", {active}) + " UNION ALL " +
          select(ended_index, {"end_ms >= ?3", "status NOT IN ('queued', 'running')"});
  } else {
    sql = select("", {});
  }
  return sql + " ORDER BY id DESC";
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
  const std::string select_container =
      "SELECT " + std::string(kContainerColumns) + " FROM containers WHERE ";
  const Entry entries[] = {
      {&s.create_user,
       "INSERT INTO users (password_hash, nickname, email, phone, role, photo_kind, photo_ref, "
       "photo_type, photo_version, account, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"},
      {&s.list_users, "SELECT " + std::string(kUserColumns) + " FROM users ORDER BY id"},
      {&s.update_user,
       "UPDATE users SET password_hash = ?, nickname = ?, email = ?, phone = ?, role = ?, "
       "photo_kind = ?, photo_ref = ?, photo_type = ?, photo_version = ? WHERE id = ?"},
      // Its containers go by ON DELETE CASCADE; its tasks stay (no foreign key).
      {&s.delete_user, "DELETE FROM users WHERE id = ?"},
      // Revoking again keeps the later expiry.
      {&s.revoke_token,
       "INSERT INTO revoked_tokens (jti, expires_at) VALUES (?, ?) ON CONFLICT (jti) DO UPDATE "
       "SET expires_at = MAX(expires_at, excluded.expires_at)"},
      {&s.list_revoked_tokens,
       "SELECT jti FROM revoked_tokens WHERE expires_at > ? ORDER BY expires_at, jti"},
      {&s.prune_revoked_tokens, "DELETE FROM revoked_tokens WHERE expires_at <= ?"},
      {&s.create_machine,
       "INSERT INTO machines (" + std::string(kMachineColumns) + ") VALUES (?, ?, ?, ?, ?)"},
      {&s.list_machines, "SELECT " + std::string(kMachineColumns) + " FROM machines ORDER BY id"},
      // Its containers and tasks go by ON DELETE CASCADE.
      {&s.delete_machine, "DELETE FROM machines WHERE id = ?"},
      {&s.set_machine_token, "UPDATE machines SET token_hash = ? WHERE id = ?"},
      {&s.set_machine_seen, "UPDATE machines SET last_seen = ?, ip = ? WHERE id = ?"},
      {&s.create_image,
       "INSERT INTO images (name, image, description, created_at) VALUES (?, ?, ?, ?)"},
      {&s.list_images, "SELECT " + std::string(kImageColumns) + " FROM images ORDER BY id"},
      // Fails with SQLITE_CONSTRAINT_FOREIGNKEY while a container names it.
      {&s.delete_image, "DELETE FROM images WHERE id = ?"},
      {&s.container_refs_exist,
       "SELECT EXISTS (SELECT 1 FROM machines WHERE id = ?), "
       "EXISTS (SELECT 1 FROM images WHERE id = ?), EXISTS (SELECT 1 FROM users WHERE id = ?)"},
      {&s.create_container,
       "INSERT INTO containers (user_id, account, machine_id, name, image_id, image, status, "
       "ports, runtime_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"},
      {&s.get_container, select_container + "id = ?"},
      {&s.list_containers, select_container +
                               "(?1 IS NULL OR user_id = ?1) AND (?2 IS NULL OR machine_id = ?2) " +
                               "ORDER BY id"},
      {&s.update_container,
       "UPDATE containers SET status = ?, ports = ?, runtime_id = ? WHERE id = ?"},
      {&s.delete_container, "DELETE FROM containers WHERE id = ?"},
      {&s.machine_has_active_tasks,
       "SELECT EXISTS (SELECT 1 FROM tasks INDEXED BY tasks_live "
       "WHERE machine_id = ? AND " +
           std::string(kActive) + ")"},
      {&s.task_refs_exist,
       "SELECT EXISTS (SELECT 1 FROM machines WHERE id = ?), "
       "EXISTS (SELECT 1 FROM users WHERE id = ?)"},
      {&s.create_task,
       "INSERT INTO tasks (user_id, account, machine_id, container_id, containername, command, "
       "duration_ms, gpu_count, gpus_requested, gpu_ids, status, submit_ms, start_ms, end_ms, "
       "exit_code, released) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"},
      {&s.get_task, "SELECT " + std::string(kTaskColumns) + " FROM tasks WHERE id = ?"},
      {&s.update_task,
       "UPDATE tasks SET gpu_ids = ?, status = ?, start_ms = ?, end_ms = ?, exit_code = ?, "
       "released = ? WHERE id = ?"},
  };
  for (const Entry& e : entries) {
    Result<StmtPtr> stmt = Prepare(db, e.sql);
    if (!stmt.ok()) return stmt.error();
    *e.slot = std::move(stmt).value();
  }
  for (int shape = 0; shape < kTaskListShapes; ++shape) {
    Result<StmtPtr> stmt = Prepare(db, TaskListSql(shape));
    if (!stmt.ok()) return stmt.error();
    s.list_tasks[static_cast<size_t>(shape)] = std::move(stmt).value();
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
  // The containers' references rely on it: the cascades, and keeping images in use.
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
  if (BindUserFields(stmt, 1, user) != SQLITE_OK ||
      BindValue(stmt, 10, user.account) != SQLITE_OK ||
      BindValue(stmt, 11, ToUnixSeconds(user.created_at)) != SQLITE_OK) {
    return DbError(db_.get(), "create user");
  }
  if (Status s = Step(stmt, {.what = "create user",
                             .conflict_code = SQLITE_CONSTRAINT_UNIQUE,
                             .conflict = "Account already exists"});
      !s.ok()) {
    return s.error();
  }
  return AsInserted(db_.get(), user);
}

Result<std::vector<User>> SqliteStore::ListUsers() {
  std::lock_guard lock(mu_);
  return Query(stmts_.list_users.get(), "list users", ReadUser);
}

Status SqliteStore::UpdateUser(const User& user) {
  std::lock_guard lock(mu_);
  sqlite3_stmt* stmt = stmts_.update_user.get();
  ScopedReset reset(stmt);
  if (BindUserFields(stmt, 1, user) != SQLITE_OK || BindValue(stmt, 10, user.id) != SQLITE_OK) {
    return DbError(db_.get(), "update user");
  }
  return Step(stmt, {.what = "update user", .not_found = "User not found"});
}

Status SqliteStore::DeleteUser(int64_t id) {
  std::lock_guard lock(mu_);
  return Write(stmts_.delete_user.get(), {.what = "delete user", .not_found = "User not found"},
               id);
}

Status SqliteStore::RevokeToken(const std::string& jti, TimePoint expires_at) {
  std::lock_guard lock(mu_);
  return Write(stmts_.revoke_token.get(), {.what = "revoke token"}, jti, ToUnixSeconds(expires_at));
}

Result<std::vector<std::string>> SqliteStore::ListRevokedTokens(TimePoint now) {
  std::lock_guard lock(mu_);
  return Query<std::string>(
      stmts_.list_revoked_tokens.get(), "list revoked tokens",
      [](sqlite3_stmt* row) -> Result<std::string> { return ColumnText(row, 0); },
      ToUnixSeconds(now));
}

Status SqliteStore::PruneRevokedTokens(TimePoint now) {
  std::lock_guard lock(mu_);
  return Write(stmts_.prune_revoked_tokens.get(), {.what = "prune revoked tokens"},
               ToUnixSeconds(now));
}

Status SqliteStore::CreateMachine(const Machine& m) {
  std::lock_guard lock(mu_);
  std::optional<int64_t> last_seen;
  if (m.last_seen) last_seen = ToUnixSeconds(*m.last_seen);
  return Write(stmts_.create_machine.get(),
               {.what = "create machine",
                .conflict_code = SQLITE_CONSTRAINT_PRIMARYKEY,
                .conflict = "Machine already exists"},
               m.id, m.token_hash, ToUnixSeconds(m.created_at), last_seen, m.ip);
}

Result<std::vector<Machine>> SqliteStore::ListMachines() {
  std::lock_guard lock(mu_);
  return Query(stmts_.list_machines.get(), "list machines", ReadMachine);
}

Status SqliteStore::DeleteMachine(const std::string& id) {
  std::lock_guard lock(mu_);
  // The check and the delete share the write lock, so no task on the machine
  // can start or be submitted in between.
  return InWriteTransaction(db_.get(), [&]() -> Status {
    sqlite3_stmt* check = stmts_.machine_has_active_tasks.get();
    ScopedReset reset(check);
    if (BindAll(check, id) != SQLITE_OK || sqlite3_step(check) != SQLITE_ROW) {
      return DbError(db_.get(), "delete machine");
    }
    if (sqlite3_column_int(check, 0) != 0) return Conflict("Machine has active tasks");
    return Write(stmts_.delete_machine.get(),
                 {.what = "delete machine", .not_found = "Machine not found"}, id);
  });
}

Status SqliteStore::SetMachineToken(const std::string& id, const std::string& token_hash) {
  std::lock_guard lock(mu_);
  return Write(stmts_.set_machine_token.get(),
               {.what = "set machine token", .not_found = "Machine not found"}, token_hash, id);
}

Status SqliteStore::SetMachineSeen(const std::string& id, TimePoint last_seen,
                                   const std::string& ip) {
  std::lock_guard lock(mu_);
  return Write(stmts_.set_machine_seen.get(),
               {.what = "set machine seen", .not_found = "Machine not found"},
               ToUnixSeconds(last_seen), ip, id);
}

Result<Image> SqliteStore::CreateImage(const Image& image) {
  std::lock_guard lock(mu_);
  if (Status s = Write(stmts_.create_image.get(), {.what = "create image"}, image.name, image.image,
                       image.description, ToUnixSeconds(image.created_at));
      !s.ok()) {
    return s.error();
  }
  return AsInserted(db_.get(), image);
}

Result<std::vector<Image>> SqliteStore::ListImages() {
  std::lock_guard lock(mu_);
  return Query(stmts_.list_images.get(), "list images", ReadImage);
}

Status SqliteStore::DeleteImage(int64_t id) {
  std::lock_guard lock(mu_);
  return Write(stmts_.delete_image.get(),
               {.what = "delete image",
                .not_found = "Image not found",
                .conflict_code = SQLITE_CONSTRAINT_FOREIGNKEY,
                .conflict = "Image is used by containers"},
               id);
}

Result<Container> SqliteStore::CreateContainer(const Container& c) {
  std::lock_guard lock(mu_);
  const std::string ports = FormatPorts(c.ports);
  // The checks and the insert share the write lock, so no other connection can
  // delete a referenced row in between.
  return InWriteTransaction(db_.get(), [&]() -> Result<Container> {
    if (Status s = CheckContainerRefs(stmts_.container_refs_exist.get(), c); !s.ok()) {
      return s.error();
    }
    if (Status s = Write(stmts_.create_container.get(),
                         {.what = "create container",
                          .conflict_code = SQLITE_CONSTRAINT_UNIQUE,
                          .conflict = "Container name already taken"},
                         c.user_id, c.account, c.machine_id, c.name, c.image_id, c.image, c.status,
                         ports, c.runtime_id, ToUnixSeconds(c.created_at));
        !s.ok()) {
      return s.error();
    }
    return AsInserted(db_.get(), c);
  });
}

Result<Container> SqliteStore::GetContainer(int64_t id) {
  std::lock_guard lock(mu_);
  Result<std::vector<Container>> rows =
      Query(stmts_.get_container.get(), "get container", ReadContainer, id);
  if (!rows.ok()) return rows.error();
  if (rows->empty()) return NotFound("Container not found");
  return std::move(rows->front());
}

Result<std::vector<Container>> SqliteStore::ListContainers(std::optional<int64_t> user_id,
                                                           std::optional<std::string> machine_id) {
  std::lock_guard lock(mu_);
  return Query(stmts_.list_containers.get(), "list containers", ReadContainer, user_id, machine_id);
}

Status SqliteStore::UpdateContainer(const Container& c) {
  std::lock_guard lock(mu_);
  return Write(stmts_.update_container.get(),
               {.what = "update container", .not_found = "Container not found"}, c.status,
               FormatPorts(c.ports), c.runtime_id, c.id);
}

Status SqliteStore::DeleteContainer(int64_t id) {
  std::lock_guard lock(mu_);
  return Write(stmts_.delete_container.get(),
               {.what = "delete container", .not_found = "Container not found"}, id);
}

Result<Task> SqliteStore::InsertTaskLocked(const Task& t) {
  const std::string requested = FormatGpus(t.gpus_requested);
  const std::string gpu_ids = FormatGpus(t.gpu_ids);
  const std::optional<int64_t> exit_code = t.exit_code;
  if (Status s = CheckTaskRefs(stmts_.task_refs_exist.get(), t); !s.ok()) return s.error();
  if (Status s = Write(stmts_.create_task.get(), {.what = "create task"}, t.user_id, t.account,
                       t.machine_id, t.container_id, t.containername, t.command,
                       static_cast<int64_t>(t.duration.count()), int64_t{t.gpu_count}, requested,
                       gpu_ids, t.status, ToUnixMillis(t.submit_time), ToUnixMillis(t.start_time),
                       ToUnixMillis(t.end_time), exit_code, int64_t{t.released ? 1 : 0});
      !s.ok()) {
    return s.error();
  }
  return TaskAsInserted(db_.get(), t);
}

std::vector<Result<Task>> SqliteStore::CreateTasks(const std::vector<Task>& tasks) {
  std::lock_guard lock(mu_);
  std::vector<Result<Task>> out;
  out.reserve(tasks.size());
  // The checks and the inserts share the write lock, so no other connection
  // can delete a machine or a user in between. A failed statement undoes only
  // itself; should the transaction be gone after one (an I/O error), the
  // whole batch fails.
  Status committed = InWriteTransaction(db_.get(), [&]() -> Status {
    for (const Task& t : tasks) {
      out.push_back(InsertTaskLocked(t));
      if (!out.back().ok() && sqlite3_get_autocommit(db_.get())) return out.back().error();
    }
    return Status::Ok();
  });
  if (!committed.ok()) out.assign(tasks.size(), Result<Task>(committed.error()));
  return out;
}

Result<Task> SqliteStore::GetTask(int64_t id) {
  std::lock_guard lock(mu_);
  Result<std::vector<Task>> rows = Query(stmts_.get_task.get(), "get task", ReadTask, id);
  if (!rows.ok()) return rows.error();
  if (rows->empty()) return NotFound("Task not found");
  return std::move(rows->front());
}

Status SqliteStore::UpdateTask(const Task& t) {
  std::lock_guard lock(mu_);
  const std::optional<int64_t> exit_code = t.exit_code;
  return Write(stmts_.update_task.get(), {.what = "update task", .not_found = "Task not found"},
               FormatGpus(t.gpu_ids), t.status, ToUnixMillis(t.start_time),
               ToUnixMillis(t.end_time), exit_code, int64_t{t.released ? 1 : 0}, t.id);
}

Result<std::vector<Task>> SqliteStore::ListTasks(const TaskFilter& f) {
  std::lock_guard lock(mu_);
  sqlite3_stmt* stmt = stmts_.list_tasks[static_cast<size_t>(TaskListShape(f))].get();
  ScopedReset reset(stmt);
  // Only the parameters the statement names may be bound.
  int rc = SQLITE_OK;
  if (f.user_id) rc = BindValue(stmt, 1, *f.user_id);
  if (f.machine_id && rc == SQLITE_OK) rc = BindValue(stmt, 2, *f.machine_id);
  if (f.active_or_ended_since && rc == SQLITE_OK) {
    // Rounded up: a stored end_ms is at or after the rounded value exactly when
    // it is at or after the given time.
    rc = BindValue(stmt, 3,
                   static_cast<int64_t>(std::chrono::ceil<std::chrono::milliseconds>(
                                            f.active_or_ended_since->time_since_epoch())
                                            .count()));
  }
  if (rc != SQLITE_OK) return DbError(db_.get(), "list tasks");
  return Query(stmt, "list tasks", ReadTask);
}

std::string ListTasksSql(const TaskFilter& filter) { return TaskListSql(TaskListShape(filter)); }

}  // namespace gpuhub::store::sqlite

namespace gpuhub::store {

Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path) {
  Result<std::unique_ptr<sqlite::SqliteStore>> store = sqlite::SqliteStore::Open(path);
  if (!store.ok()) return store.error();
  return std::unique_ptr<Store>(std::move(store).value());
}

}  // namespace gpuhub::store
