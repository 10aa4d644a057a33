// The lease messages of the agent link (docs/protocol.md): the server tells an
// agent to start or stop a leased command; the agent reports each lease's
// state as it changes, and all of them after every (re)connection.
//
// Shared by the server and the agent. Plain data with JSON conversion; each
// FromJson validates and names the first bad field. Times are milliseconds
// since the Unix epoch. Thread-safety is that of any value type.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/result.hpp"

namespace gpuhub::proto {

// Server -> agent, type "task_start": run `command` as `sh -c` in the
// container with CUDA_VISIBLE_DEVICES and NVIDIA_VISIBLE_DEVICES set to
// `gpus`, until `deadline_ms`; at the deadline SIGTERM, then SIGKILL after
// `kill_grace_ms`.
struct TaskStart {
  int64_t task_id = 0;
  std::string container;  // the runtime name, gpuhub-<account>-<name>
  std::string command;
  std::vector<int> gpus;
  int64_t deadline_ms = 0;
  int64_t kill_grace_ms = 30000;
  bool operator==(const TaskStart&) const = default;
};
nlohmann::json ToJson(const TaskStart& t);
Result<TaskStart> TaskStartFromJson(const nlohmann::json& data);

// Server -> agent, type "task_stop": end the lease now (it was cancelled).
// Type "task_forget": the server has recorded the lease's end; the agent may
// drop it. Both carry {"task_id"}.
Result<int64_t> TaskIdFromJson(const nlohmann::json& data);

// Agent -> server, type "task": one lease as the agent sees it.
// status: "running", or the end: "completed" (exit 0), "failed" (exit != 0,
// or it could not start: exit_code null and a message), "expired" (stopped at
// its deadline), "cancelled" (stopped by task_stop). `released` becomes true
// once no process of the lease is left, so its GPUs are free again.
struct TaskReport {
  int64_t task_id = 0;
  std::string status;
  std::optional<int> exit_code;
  int64_t start_ms = 0;  // when the command started; 0 if it never did
  int64_t end_ms = 0;    // when it ended; 0 while running
  bool released = false;
  std::string message;  // why it failed to start, or empty
  bool operator==(const TaskReport&) const = default;
};
nlohmann::json ToJson(const TaskReport& r);
Result<TaskReport> TaskReportFromJson(const nlohmann::json& data);

// Agent -> server, type "tasks": every lease the agent knows (running, or
// ended and not yet forgotten), sent after the inventory of each connection.
nlohmann::json TasksReportJson(const std::vector<TaskReport>& tasks);
Result<std::vector<TaskReport>> TasksReportFromJson(const nlohmann::json& data);

// Agent -> server, type "task_output": {"task_id", "data"}: more of the
// command's output (stdout and stderr together), as text (bytes that are not
// UTF-8 are replaced).
struct TaskOutput {
  int64_t task_id = 0;
  std::string data;
  bool operator==(const TaskOutput&) const = default;
};
nlohmann::json ToJson(const TaskOutput& o);
Result<TaskOutput> TaskOutputFromJson(const nlohmann::json& data);

bool IsFinalTaskStatus(std::string_view status);

}  // namespace gpuhub::proto
