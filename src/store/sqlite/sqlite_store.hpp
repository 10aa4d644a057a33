// SqliteStore: the Store on one SQLite file in WAL mode.
//
// Thread-safety: one connection, guarded by one mutex; every method holds it
// for its whole call, so a SqliteStore may be used from any thread and calls
// are serialized. Each method is a single auto-committed statement, except
// CreateContainer and CreateTask, which check and insert, and DeleteMachine,
// which checks for active tasks and deletes, each in one BEGIN IMMEDIATE
// transaction; with synchronous=FULL a successful return is durable even
// against power loss.
// Other processes may open the same file; they wait up to kBusyTimeoutMs for
// its lock. Private to src/store: others use OpenSqliteStore in store.hpp.
#pragma once

#include <sqlite3.h>

#include <array>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "store/store.hpp"

namespace gpuhub::store::sqlite {

inline constexpr int kBusyTimeoutMs = 5000;

struct DbCloser {
  void operator()(sqlite3* db) const { sqlite3_close_v2(db); }
};
struct StmtFinalizer {
  void operator()(sqlite3_stmt* stmt) const { sqlite3_finalize(stmt); }
};
using DbPtr = std::unique_ptr<sqlite3, DbCloser>;
using StmtPtr = std::unique_ptr<sqlite3_stmt, StmtFinalizer>;

// The prepared statements, made once at open and reused.
struct Statements {
  StmtPtr create_user;
  StmtPtr list_users;
  StmtPtr update_user;
  StmtPtr delete_user;
  StmtPtr revoke_token;
  StmtPtr list_revoked_tokens;
  StmtPtr prune_revoked_tokens;
  StmtPtr create_machine;
  StmtPtr list_machines;
  StmtPtr delete_machine;
  StmtPtr set_machine_token;
  StmtPtr set_machine_seen;
  StmtPtr create_image;
  StmtPtr list_images;
  StmtPtr delete_image;
  StmtPtr container_refs_exist;
  StmtPtr create_container;
  StmtPtr get_container;
  StmtPtr list_containers;
  StmtPtr update_container;
  StmtPtr delete_container;
  StmtPtr machine_has_active_tasks;
  StmtPtr task_refs_exist;
  StmtPtr create_task;
  StmtPtr get_task;
  StmtPtr update_task;
  // One per shape of TaskFilter, indexed by TaskListShape (sqlite_store.cpp).
  std::array<StmtPtr, 16> list_tasks;
};

// The SELECT that ListTasks runs for filters shaped like `filter` (which of
// its fields are set; their values are bound as ?1 user_id, ?2 machine_id, ?3
// active_or_ended_since in ms). For tests of its query plan.
std::string ListTasksSql(const TaskFilter& filter);

class SqliteStore final : public Store {
 public:
  // Opens `path` (creating the file, not its directory), sets the pragmas and
  // applies pending migrations. kInternal with the database's message on failure.
  static Result<std::unique_ptr<SqliteStore>> Open(const std::string& path);

  // Takes an open, migrated connection and its statements; use Open.
  SqliteStore(DbPtr db, Statements statements);

  Result<User> CreateUser(const User& user) override;
  Result<std::vector<User>> ListUsers() override;
  Status UpdateUser(const User& user) override;
  Status DeleteUser(int64_t id) override;
  Status RevokeToken(const std::string& jti, TimePoint expires_at) override;
  Result<std::vector<std::string>> ListRevokedTokens(TimePoint now) override;
  Status PruneRevokedTokens(TimePoint now) override;
  Status CreateMachine(const Machine& machine) override;
  Result<std::vector<Machine>> ListMachines() override;
  Status DeleteMachine(const std::string& id) override;
  Status SetMachineToken(const std::string& id, const std::string& token_hash) override;
  Status SetMachineSeen(const std::string& id, TimePoint last_seen, const std::string& ip) override;
  Result<Image> CreateImage(const Image& image) override;
  Result<std::vector<Image>> ListImages() override;
  Status DeleteImage(int64_t id) override;
  Result<Container> CreateContainer(const Container& container) override;
  Result<Container> GetContainer(int64_t id) override;
  Result<std::vector<Container>> ListContainers(std::optional<int64_t> user_id,
                                                std::optional<std::string> machine_id) override;
  Status UpdateContainer(const Container& c) override;
  Status DeleteContainer(int64_t id) override;
  std::vector<Result<Task>> CreateTasks(const std::vector<Task>& tasks) override;
  Result<Task> GetTask(int64_t id) override;
  Status UpdateTask(const Task& t) override;
  Result<std::vector<Task>> ListTasks(const TaskFilter& filter) override;

 private:
  // Checks the task's machine and user and inserts it; needs mu_ and an open
  // write transaction.
  Result<Task> InsertTaskLocked(const Task& t);

  std::mutex mu_;
  DbPtr db_;          // declared before stmts_: statements are finalized first
  Statements stmts_;  // guarded by mu_
};

}  // namespace gpuhub::store::sqlite
