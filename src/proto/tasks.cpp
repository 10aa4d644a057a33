#include "proto/tasks.hpp"

#include <algorithm>
#include <array>
#include <limits>

#include "proto/json_fields.hpp"

namespace gpuhub::proto {
namespace {

using nlohmann::json;
using namespace fields;

constexpr int64_t kMaxId = std::numeric_limits<int64_t>::max();
constexpr std::array<std::string_view, 5> kStatuses = {"running", "completed", "failed", "expired",
                                                       "cancelled"};

Status GetBool(const json& obj, const char* key, bool& out) {
  const json* v = Find(obj, key);
  if (v == nullptr || !v->is_boolean()) return Bad(key, "must be true or false");
  out = v->get<bool>();
  return Status::Ok();
}

}  // namespace

bool IsFinalTaskStatus(std::string_view status) {
  return status != "running" &&
         std::find(kStatuses.begin(), kStatuses.end(), status) != kStatuses.end();
}

json ToJson(const TaskStart& t) {
  return {{"task_id", t.task_id},         {"container", t.container},
          {"command", t.command},         {"gpus", t.gpus},
          {"deadline_ms", t.deadline_ms}, {"kill_grace_ms", t.kill_grace_ms}};
}

Result<TaskStart> TaskStartFromJson(const json& data) {
  if (!data.is_object()) return InvalidArgument("task_start data must be an object");
  TaskStart t;
  if (auto s = GetInt64(data, "task_id", "", kMaxId, t.task_id); !s.ok()) return s.error();
  if (auto s = GetString(data, "container", "", t.container); !s.ok()) return s.error();
  if (auto s = GetString(data, "command", "", t.command); !s.ok()) return s.error();
  if (auto s = GetInt64(data, "deadline_ms", "", kMaxId, t.deadline_ms); !s.ok()) return s.error();
  if (auto s = GetInt64(data, "kill_grace_ms", "", kMaxId, t.kill_grace_ms); !s.ok()) {
    return s.error();
  }
  const json* gpus = Find(data, "gpus");
  if (gpus == nullptr || !gpus->is_array()) return Bad("gpus", "must be an array");
  for (size_t i = 0; i < gpus->size(); ++i) {
    int64_t g = 0;
    if (auto s = ReadInt((*gpus)[i], "gpus[" + std::to_string(i) + "]", 1 << 16, g); !s.ok()) {
      return s.error();
    }
    t.gpus.push_back(static_cast<int>(g));
  }
  return t;
}

Result<int64_t> TaskIdFromJson(const json& data) {
  if (!data.is_object()) return InvalidArgument("data must be an object");
  int64_t id = 0;
  if (auto s = GetInt64(data, "task_id", "", kMaxId, id); !s.ok()) return s.error();
  return id;
}

json ToJson(const TaskReport& r) {
  return {{"task_id", r.task_id},
          {"status", r.status},
          {"exit_code", r.exit_code ? json(*r.exit_code) : json(nullptr)},
          {"start_ms", r.start_ms},
          {"end_ms", r.end_ms},
          {"released", r.released},
          {"message", r.message}};
}

Result<TaskReport> TaskReportFromJson(const json& data) {
  if (!data.is_object()) return InvalidArgument("task data must be an object");
  TaskReport r;
  if (auto s = GetInt64(data, "task_id", "", kMaxId, r.task_id); !s.ok()) return s.error();
  if (auto s = GetString(data, "status", "", r.status); !s.ok()) return s.error();
  if (std::find(kStatuses.begin(), kStatuses.end(), r.status) == kStatuses.end()) {
    return Bad("status", "must be one of running, completed, failed, expired, cancelled");
  }
  const json* code = Find(data, "exit_code");
  if (code == nullptr) return Bad("exit_code", "is missing");
  if (!code->is_null()) {
    const auto* i = code->get_ptr<const json::number_integer_t*>();
    const auto* u = code->get_ptr<const json::number_unsigned_t*>();
    if (u != nullptr && *u <= 255) {
      r.exit_code = static_cast<int>(*u);
    } else if (i != nullptr && *i >= -255 && *i <= 255) {
      r.exit_code = static_cast<int>(*i);
    } else {
      return Bad("exit_code", "must be null or an integer -255..255");
    }
  }
  if (auto s = GetInt64(data, "start_ms", "", kMaxId, r.start_ms); !s.ok()) return s.error();
  if (auto s = GetInt64(data, "end_ms", "", kMaxId, r.end_ms); !s.ok()) return s.error();
  if (auto s = GetBool(data, "released", r.released); !s.ok()) return s.error();
  if (auto s = GetString(data, "message", "", r.message); !s.ok()) return s.error();
  return r;
}

json TasksReportJson(const std::vector<TaskReport>& tasks) {
  json arr = json::array();
  for (const auto& t : tasks) arr.push_back(ToJson(t));
  return {{"tasks", std::move(arr)}};
}

Result<std::vector<TaskReport>> TasksReportFromJson(const json& data) {
  if (!data.is_object()) return InvalidArgument("tasks data must be an object");
  const json* arr = Find(data, "tasks");
  if (arr == nullptr || !arr->is_array()) return Bad("tasks", "must be an array");
  std::vector<TaskReport> out;
  for (size_t i = 0; i < arr->size(); ++i) {
    auto r = TaskReportFromJson((*arr)[i]);
    if (!r.ok()) return InvalidArgument("tasks[" + std::to_string(i) + "]." + r.error().message);
    out.push_back(std::move(r).value());
  }
  return out;
}

json ToJson(const TaskOutput& o) { return {{"task_id", o.task_id}, {"data", o.data}}; }

Result<TaskOutput> TaskOutputFromJson(const json& data) {
  if (!data.is_object()) return InvalidArgument("task_output data must be an object");
  TaskOutput o;
  if (auto s = GetInt64(data, "task_id", "", kMaxId, o.task_id); !s.ok()) return s.error();
  if (auto s = GetString(data, "data", "", o.data); !s.ok()) return s.error();
  return o;
}

}  // namespace gpuhub::proto
