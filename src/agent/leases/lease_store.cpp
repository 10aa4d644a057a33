#include "agent/leases/lease_store.hpp"

#include <sys/stat.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>

#include "proto/tasks.hpp"

namespace gpuhub::agent::leases {
namespace {

using nlohmann::json;

constexpr int kFileVersion = 1;
constexpr size_t kMaxFileBytes = 64 * 1024 * 1024;

Error Bad(const std::string& key, const std::string& what) {
  return InvalidArgument(key + " " + what);
}

Status GetInt64(const json& j, const char* key, int64_t& out) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer()) return Bad(key, "must be an integer");
  if (it->is_number_unsigned() && it->get<uint64_t>() > uint64_t{INT64_MAX}) {
    return Bad(key, "is too large");
  }
  out = it->get<int64_t>();
  if (out < 0) return Bad(key, "must not be negative");
  return Status::Ok();
}

Status GetUint64(const json& j, const char* key, uint64_t& out) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_number_integer() ||
      (!it->is_number_unsigned() && it->get<int64_t>() < 0)) {
    return Bad(key, "must be an unsigned integer");
  }
  out = it->get<uint64_t>();
  return Status::Ok();
}

Status GetString(const json& j, const char* key, std::string& out) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_string()) return Bad(key, "must be a string");
  out = it->get<std::string>();
  return Status::Ok();
}

Status GetBool(const json& j, const char* key, bool& out) {
  auto it = j.find(key);
  if (it == j.end() || !it->is_boolean()) return Bad(key, "must be true or false");
  out = it->get<bool>();
  return Status::Ok();
}

json ProcessIdJson(const ProcessId& p) { return json::array({p.pid, p.start_time}); }

Result<ProcessId> ProcessIdFromJson(const json& j) {
  if (!j.is_array() || j.size() != 2 || !j[0].is_number_integer() || !j[1].is_number_integer() ||
      j[0].get<int64_t>() <= 0 || (!j[1].is_number_unsigned() && j[1].get<int64_t>() < 0)) {
    return InvalidArgument("groups must hold [pid, start time] pairs");
  }
  return ProcessId{j[0].get<int64_t>(), j[1].get<uint64_t>()};
}

bool KnownStatus(const std::string& s) {
  return s == kStarting || s == "running" || proto::IsFinalTaskStatus(s);
}

}  // namespace

json ToJson(const LeaseRecord& r) {
  json j = json::object();
  j["task_id"] = r.task_id;
  j["container"] = r.container;
  j["command"] = r.command;
  j["gpus"] = r.gpus;
  j["deadline_ms"] = r.deadline_ms;
  j["kill_grace_ms"] = r.kill_grace_ms;
  j["exec_id"] = r.exec_id;
  j["pid"] = r.process.pid;
  j["pid_start"] = r.process.start_time;
  json groups = json::array();
  for (const auto& g : r.groups) groups.push_back(ProcessIdJson(g));
  j["groups"] = std::move(groups);
  j["status"] = r.status;
  if (r.exit_code) {
    j["exit_code"] = *r.exit_code;
  } else {
    j["exit_code"] = nullptr;
  }
  j["start_ms"] = r.start_ms;
  j["end_ms"] = r.end_ms;
  j["released"] = r.released;
  j["message"] = r.message;
  return j;
}

Result<LeaseRecord> LeaseRecordFromJson(const json& j) {
  if (!j.is_object()) return InvalidArgument("a lease must be an object");
  LeaseRecord r;
  if (auto s = GetInt64(j, "task_id", r.task_id); !s.ok()) return s.error();
  if (auto s = GetString(j, "container", r.container); !s.ok()) return s.error();
  if (auto s = GetString(j, "command", r.command); !s.ok()) return s.error();
  auto gpus = j.find("gpus");
  if (gpus == j.end() || !gpus->is_array()) return Bad("gpus", "must be an array");
  for (const auto& g : *gpus) {
    if (!g.is_number_integer() || g.get<int64_t>() < 0 || g.get<int64_t>() > 65535) {
      return Bad("gpus", "must hold GPU indices");
    }
    r.gpus.push_back(g.get<int>());
  }
  if (auto s = GetInt64(j, "deadline_ms", r.deadline_ms); !s.ok()) return s.error();
  if (auto s = GetInt64(j, "kill_grace_ms", r.kill_grace_ms); !s.ok()) return s.error();
  if (auto s = GetString(j, "exec_id", r.exec_id); !s.ok()) return s.error();
  if (auto s = GetInt64(j, "pid", r.process.pid); !s.ok()) return s.error();
  if (auto s = GetUint64(j, "pid_start", r.process.start_time); !s.ok()) return s.error();
  auto groups = j.find("groups");
  if (groups == j.end() || !groups->is_array()) return Bad("groups", "must be an array");
  for (const auto& g : *groups) {
    auto p = ProcessIdFromJson(g);
    if (!p.ok()) return p.error();
    r.groups.push_back(*p);
  }
  if (auto s = GetString(j, "status", r.status); !s.ok()) return s.error();
  if (!KnownStatus(r.status)) return Bad("status", "is not a lease status: " + r.status);
  auto code = j.find("exit_code");
  if (code == j.end()) return Bad("exit_code", "is missing");
  if (!code->is_null()) {
    if (!code->is_number_integer() || code->get<int64_t>() < -255 || code->get<int64_t>() > 255) {
      return Bad("exit_code", "must be null or an integer -255..255");
    }
    r.exit_code = code->get<int>();
  }
  if (auto s = GetInt64(j, "start_ms", r.start_ms); !s.ok()) return s.error();
  if (auto s = GetInt64(j, "end_ms", r.end_ms); !s.ok()) return s.error();
  if (auto s = GetBool(j, "released", r.released); !s.ok()) return s.error();
  if (auto s = GetString(j, "message", r.message); !s.ok()) return s.error();
  return r;
}

std::string LeaseFileText(const std::vector<LeaseRecord>& leases) {
  json arr = json::array();
  for (const auto& r : leases) arr.push_back(ToJson(r));
  json file = json::object();
  file["version"] = kFileVersion;
  file["leases"] = std::move(arr);
  return file.dump(1, ' ', false, json::error_handler_t::replace) + "\n";
}

Result<LoadedLeases> ParseLeaseFile(std::string_view text) {
  json file = json::parse(text, nullptr, false);
  if (file.is_discarded() || !file.is_object()) {
    return InvalidArgument("not a JSON object");
  }
  auto version = file.find("version");
  if (version == file.end() || !version->is_number_integer() ||
      version->get<int64_t>() != kFileVersion) {
    return InvalidArgument("not a lease file of version 1");
  }
  auto leases = file.find("leases");
  if (leases == file.end() || !leases->is_array())
    return InvalidArgument("leases must be an array");
  LoadedLeases out;
  for (size_t i = 0; i < leases->size(); ++i) {
    auto r = LeaseRecordFromJson((*leases)[i]);
    if (!r.ok()) {
      out.problems.push_back("lease " + std::to_string(i) + ": " + r.error().message);
      continue;
    }
    bool duplicate = false;
    for (const auto& have : out.leases) duplicate = duplicate || have.task_id == r->task_id;
    if (duplicate) {
      out.problems.push_back("lease " + std::to_string(i) + ": task " + std::to_string(r->task_id) +
                             " appears twice");
      continue;
    }
    out.leases.push_back(std::move(r).value());
  }
  return out;
}

Result<LeaseStore> LeaseStore::Open(const std::string& state_dir) {
  struct stat st {};
  const bool existed = ::stat(state_dir.c_str(), &st) == 0;
  if (auto s = MakeDirs(state_dir); !s.ok()) return s.error();
  if (!existed) ::chmod(state_dir.c_str(), 0700);  // made here: private
  auto lock = FileLock::Acquire(state_dir + "/leases.lock");
  if (!lock.ok()) {
    if (lock.error().code == ErrorCode::kConflict) {
      return Conflict("another gpuhub-agent uses the state directory " + state_dir);
    }
    return lock.error();
  }
  return LeaseStore(state_dir + "/leases.json", std::move(lock).value());
}

Result<LoadedLeases> LeaseStore::Load() const {
  auto text = ReadFile(path_, kMaxFileBytes);
  if (!text.ok()) {
    if (text.error().code == ErrorCode::kNotFound) return LoadedLeases{};
    if (text.error().code == ErrorCode::kTooLarge) {
      return InvalidArgument(path_ + ": " + text.error().message);
    }
    return text.error();
  }
  auto parsed = ParseLeaseFile(*text);
  if (!parsed.ok()) return InvalidArgument(path_ + ": " + parsed.error().message);
  return parsed;
}

Status LeaseStore::Save(const std::vector<LeaseRecord>& leases) const {
  return WriteFileAtomic(path_, LeaseFileText(leases), 0600);
}

Result<std::string> LeaseStore::Quarantine(int64_t now_ms) const {
  std::string to = path_ + ".bad-" + std::to_string(now_ms);
  if (std::rename(path_.c_str(), to.c_str()) != 0) {
    return Internal("cannot rename " + path_ + " to " + to + ": " + std::strerror(errno));
  }
  return to;
}

}  // namespace gpuhub::agent::leases
