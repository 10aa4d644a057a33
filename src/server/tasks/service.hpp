// TaskService: GPU leases (contract section 7). Accepts, queues and cancels
// tasks, starts them on the machines' agents when the scheduler says their
// GPUs are free, and follows what the agents report until the GPUs are free
// again.
//
// Every state change is stored before it is acknowledged or sent to an agent.
// Open() rebuilds the queues from the store after a restart; the agents'
// reports after they reconnect settle what happened meanwhile (a lease the
// agent no longer knows is resent while its time lasts). A machine offline
// for longer than `lost_grace` with leases running marks them "lost"; their
// GPUs stay unavailable until the agent is back and confirms nothing of them
// runs.
//
// Thread-safe: one lock guards the queues (sched::MachineQueue) and the
// store writes of task state. Nothing is called back under it but the
// TaskLink, whose calls must not block. The Store and the TaskLink must
// outlive the service.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/clock.hpp"
#include "common/result.hpp"
#include "proto/containers.hpp"
#include "proto/tasks.hpp"
#include "sched/scheduler.hpp"
#include "server/accounts/accounts.hpp"
#include "server/tasks/group_insert.hpp"
#include "server/tasks/types.hpp"
#include "store/store.hpp"

namespace gpuhub::tasks {

// How the service reaches agents and browsers (the WebSocket hub).
class TaskLink {
 public:
  virtual ~TaskLink() = default;
  // Queues a message for the machine's agent; false when it is not connected.
  virtual bool SendToAgent(const std::string& machine_id, std::string_view type,
                           nlohmann::json data) = 0;
  // Pushes {"type":"task","data":task} to the user's signed-in browsers.
  virtual void SendToUser(int64_t user_id, const nlohmann::json& task) = 0;
};

struct TaskOptions {
  std::chrono::milliseconds max_duration = std::chrono::hours(72);
  std::chrono::milliseconds kill_grace = std::chrono::seconds(30);
  std::chrono::milliseconds lost_grace = std::chrono::minutes(10);
  std::string log_dir;  // <data>/task-logs: the last 64 KiB of each task's output
};

// What the task/request endpoint answers.
struct Submitted {
  store::Task task;
  std::optional<TimePoint> estimated_start;
};

class TaskService {
 public:
  static Result<std::unique_ptr<TaskService>> Open(store::Store& store, TaskLink& link,
                                                   const Clock& clock, TaskOptions options);

  // The machine's GPU count changed (its inventory); 0 when unknown.
  void SetGpuCount(const std::string& machine_id, int gpus);
  // The machine's agent connected (queued leases may start) or disconnected.
  void SetOnline(const std::string& machine_id, bool online);

  // Checks, stores (a group commit with concurrent submissions: see
  // GroupInsert) and queues the task, and starts it if its GPUs are free.
  // 404 "Machine not found" / "Container not found"; 400 for a duration over
  // the maximum, a gpu_count beyond the machine's GPUs or a GPU it lacks.
  boost::asio::awaitable<Result<Submitted>> Submit(const accounts::Principal& caller,
                                                   const TaskRequest& request);
  // 404 "Task not found" (also on another machine), 403, 409 "Task already finished".
  Result<store::Task> Cancel(const accounts::Principal& caller, const CancelRequest& request);
  // Newest first; active ones and those ended in the last 24 h unless `all`.
  Result<std::vector<store::Task>> ListForUser(const std::string& account, bool all);
  Result<std::vector<store::Task>> ListForMachine(const std::string& machine_id, bool all);
  // The last 64 KiB of the task's output (owner or admin; 404, 403).
  Result<std::string> Log(const accounts::Principal& caller, int64_t task_id);
  // A queued task's estimated start, or nullopt.
  std::optional<TimePoint> EstimatedStart(const store::Task& task);
  // GPU index -> (task id, account) of the leases holding a machine's GPUs
  // (running, or ended with processes not yet gone). The listener gets the
  // whole map of a machine whenever it may have changed, under the service's
  // lock: it must not call back into the service. Setting it reports every
  // machine with leases at once.
  using GpuHolders = std::map<int, std::pair<int64_t, std::string>>;
  using HoldersListener = std::function<void(const std::string& machine_id, const GpuHolders&)>;
  void OnHoldersChanged(HoldersListener listener);

  // From the machine's agent: one lease's state, all of them after a
  // (re)connection, more output.
  void OnReport(const std::string& machine_id, const proto::TaskReport& report);
  void OnTasksReport(const std::string& machine_id, const std::vector<proto::TaskReport>& list);
  void OnOutput(const std::string& machine_id, const proto::TaskOutput& output);

  // Marks running leases of machines offline past lost_grace "lost". Call
  // every few seconds.
  void Sweep();

  // The JSON of a task, as the lists and events show it.
  nlohmann::json TaskJson(const store::Task& t);

 private:
  struct Machine {
    explicit Machine(int gpu_count) : queue(gpu_count), gpus(gpu_count) {}
    sched::MachineQueue queue;
    int gpus = 0;
    bool online = false;
    TimePoint offline_since{};
  };
  TaskService(store::Store& store, TaskLink& link, const Clock& clock, TaskOptions options);

  // Submit's steps: the checks and the record to store; then, once stored,
  // queueing and scheduling it.
  Result<store::Task> Prepare(const accounts::Principal& caller, const TaskRequest& request);
  Result<Submitted> Admit(store::Task t);

  Machine& MachineLocked(const std::string& id);
  // Starts what the scheduler allows on an online machine.
  void ScheduleLocked(const std::string& machine_id, Machine& m);
  void SendStartLocked(const store::Task& t);
  // Stores a changed task and tells its owner.
  void SaveLocked(const store::Task& t);
  void ApplyReportLocked(Machine& m, store::Task t, const proto::TaskReport& r);
  nlohmann::json TaskJsonLocked(const store::Task& t);
  void NotifyHoldersLocked(const std::string& machine_id);

  store::Store& store_;
  TaskLink& link_;
  const Clock& clock_;
  const TaskOptions options_;
  std::mutex mu_;
  std::map<std::string, std::unique_ptr<Machine>> machines_;  // guarded by mu_
  std::map<std::string, int> gpu_counts_;                     // guarded by mu_
  HoldersListener holders_listener_;                          // guarded by mu_
  GroupInsert inserts_;
};

}  // namespace gpuhub::tasks
