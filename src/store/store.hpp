// Store: gpuhub's durable state, behind an interface free of any database.
//
// Every method commits before it returns: a successful call is durable and
// survives a kill -9 of the process. Implementations are thread-safe; callers
// may use one Store from any thread. Expected failures (a duplicate account,
// a missing row) come back as Result errors with kConflict or kNotFound;
// kInternal means the database itself failed.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/clock.hpp"
#include "common/result.hpp"

namespace gpuhub::store {

// A user's photo: either an uploaded image kept as a file in the data dir, or
// one of the preset avatars shipped with gpuhub.
struct Photo {
  enum class Kind { kUpload, kPreset };
  Kind kind = Kind::kPreset;
  std::string ref;           // file name under <data>/photos, or the preset's name
  std::string content_type;  // e.g. "image/png"
  std::string version;       // changes on every new photo; part of the photo URL
  bool operator==(const Photo&) const = default;
};

struct User {
  int64_t id = 0;
  std::string account;
  std::string password_hash;  // argon2id, crypto_pwhash_str format
  std::string nickname;
  std::optional<std::string> email;
  std::optional<std::string> phone;
  std::string role;  // "user" or "admin"
  std::optional<Photo> photo;
  TimePoint created_at{};
  bool operator==(const User&) const = default;
};

// A GPU machine registered by an admin. Its agent authenticates with a token
// of which only the hash is kept.
struct Machine {
  std::string id;
  std::string token_hash;
  TimePoint created_at{};
  std::optional<TimePoint> last_seen;  // last time its agent was connected
  std::string ip;                      // last known address; empty if never seen
  bool operator==(const Machine&) const = default;
};

// An entry of the image catalog that admins offer for containers.
struct Image {
  int64_t id = 0;
  std::string name;         // shown to users, e.g. "PyTorch 2.3 + SSH"
  std::string image;        // the container runtime's reference, e.g. "docker.io/lab/torch:2.3"
  std::string description;  // may be empty
  TimePoint created_at{};
  bool operator==(const Image&) const = default;
};

// A published port of a container: container port -> host port on its machine.
struct PortMapping {
  int container = 0;
  int host = 0;  // 0 until the agent has allocated it
  bool operator==(const PortMapping&) const = default;
};

// A user's container on one machine. `status` is what the machine's agent last
// reported ("creating", "created", "running", "exited", "paused", "restarting",
// "dead", "gone"); `runtime_id` is the runtime's container id, empty until
// created.
struct Container {
  int64_t id = 0;
  int64_t user_id = 0;
  std::string account;  // the owner's account at creation (runtime name, labels)
  std::string machine_id;
  std::string name;  // unique per user and machine
  int64_t image_id = 0;
  std::string image;  // the image reference it was created from
  std::string status;
  std::vector<PortMapping> ports;
  std::string runtime_id;
  TimePoint created_at{};
  bool operator==(const Container&) const = default;
};

// A GPU lease: `command` run in the user's container on one machine with
// `gpu_ids` for `duration`. Status: "queued", "running", "completed",
// "failed", "cancelled", "expired", "lost".
struct Task {
  int64_t id = 0;
  int64_t user_id = 0;
  std::string account;
  std::string machine_id;
  int64_t container_id = 0;
  std::string containername;
  std::string command;
  std::chrono::milliseconds duration{0};
  int gpu_count = 0;
  std::vector<int> gpus_requested;  // the explicit `gpus` of the request, or empty
  std::vector<int> gpu_ids;         // the GPUs leased; empty while queued
  std::string status;
  TimePoint submit_time{};
  std::optional<TimePoint> start_time;
  std::optional<TimePoint> end_time;
  std::optional<int> exit_code;
  bool released = false;  // the lease's processes are gone and its GPUs free again
  bool operator==(const Task&) const = default;
};

// Which tasks ListTasks returns.
struct TaskFilter {
  std::optional<int64_t> user_id;
  std::optional<std::string> machine_id;
  // When set: queued and running tasks, and those that ended at or after it.
  std::optional<TimePoint> active_or_ended_since;
  // When set: only tasks whose GPUs are not released yet (queued, running, or
  // ended with released false).
  bool unreleased_only = false;
};

class Store {
 public:
  virtual ~Store() = default;

  // Inserts `user` (its id is ignored) and returns it with the new id. Ids are
  // never reused, even after a delete. kConflict if the account exists.
  virtual Result<User> CreateUser(const User& user) = 0;

  // Every user, ordered by id.
  virtual Result<std::vector<User>> ListUsers() = 0;

  // Replaces all fields of the user with `user.id` except id, account and
  // created_at. kNotFound if there is no such user.
  virtual Status UpdateUser(const User& user) = 0;

  // Deletes the user and their container records (their tasks stay, as
  // history, under their account name). kNotFound if there is no such user.
  virtual Status DeleteUser(int64_t id) = 0;

  // Records that the token with `jti` is revoked until `expires_at`.
  // Revoking a revoked token again is not an error.
  virtual Status RevokeToken(const std::string& jti, TimePoint expires_at) = 0;

  // The jtis of revoked tokens whose expiry is after `now`.
  virtual Result<std::vector<std::string>> ListRevokedTokens(TimePoint now) = 0;

  // Forgets revoked tokens that expired at or before `now` (they fail as
  // expired anyway).
  virtual Status PruneRevokedTokens(TimePoint now) = 0;

  // Inserts the machine. kConflict "Machine already exists" for a taken id.
  virtual Status CreateMachine(const Machine& machine) = 0;

  // Every machine, ordered by id.
  virtual Result<std::vector<Machine>> ListMachines() = 0;

  // kNotFound "Machine not found" for an unknown id; kConflict "Machine has
  // active tasks" while a task on it is queued or running. The machine's
  // container records and finished tasks go with it.
  virtual Status DeleteMachine(const std::string& id) = 0;
  virtual Status SetMachineToken(const std::string& id, const std::string& token_hash) = 0;
  virtual Status SetMachineSeen(const std::string& id, TimePoint last_seen,
                                const std::string& ip) = 0;

  // Inserts `image` (its id is ignored) and returns it with the new id. Ids are
  // never reused.
  virtual Result<Image> CreateImage(const Image& image) = 0;
  // Every image, ordered by id.
  virtual Result<std::vector<Image>> ListImages() = 0;
  // kNotFound "Image not found"; kConflict "Image is used by containers" while
  // a container record names it.
  virtual Status DeleteImage(int64_t id) = 0;

  // Inserts `container` (its id is ignored) and returns it with the new id.
  // Ids are never reused. kConflict "Container name already taken" when the
  // user already has a container of that name on that machine; kNotFound
  // "Machine not found" / "Image not found" / "User not found" when one of
  // those does not exist.
  virtual Result<Container> CreateContainer(const Container& container) = 0;
  // kNotFound "Container not found".
  virtual Result<Container> GetContainer(int64_t id) = 0;
  // Containers ordered by id: all of them (nullopt), or those of one user, or
  // those on one machine.
  virtual Result<std::vector<Container>> ListContainers(std::optional<int64_t> user_id,
                                                        std::optional<std::string> machine_id) = 0;
  // Replaces status, ports and runtime_id of the container with `c.id`.
  // kNotFound "Container not found".
  virtual Status UpdateContainer(const Container& c) = 0;
  // kNotFound "Container not found".
  virtual Status DeleteContainer(int64_t id) = 0;

  // Inserts `task` (its id is ignored) and returns it with the new id; ids are
  // never reused and grow with submission. kNotFound "Machine not found" /
  // "User not found". Times keep millisecond precision.
  Result<Task> CreateTask(const Task& task) { return std::move(CreateTasks({task}).front()); }
  // Group commit: inserts each of `tasks` as CreateTask does, all in one
  // transaction (one flush to disk), and returns each one's outcome in order.
  // A task refused (kNotFound) does not keep the others out; when the
  // transaction itself fails, every outcome is that error and none is stored.
  virtual std::vector<Result<Task>> CreateTasks(const std::vector<Task>& tasks) = 0;
  // kNotFound "Task not found".
  virtual Result<Task> GetTask(int64_t id) = 0;
  // Replaces gpu_ids, status, start_time, end_time, exit_code and released of
  // the task with `t.id`. kNotFound "Task not found".
  virtual Status UpdateTask(const Task& t) = 0;
  // Tasks matching `filter`, newest (highest id) first.
  virtual Result<std::vector<Task>> ListTasks(const TaskFilter& filter) = 0;
};

// Opens (creating if needed) the SQLite database at `path` in WAL mode and
// applies every pending schema migration. kInternal on failure, with the
// database's message.
Result<std::unique_ptr<Store>> OpenSqliteStore(const std::string& path);

}  // namespace gpuhub::store
