// LeaseStore: the agent's leases on disk, so that a restarted agent still
// knows (and still ends) the commands it started.
//
// One JSON file, <state_dir>/leases.json, holding every lease the agent
// knows: running ones and ended ones the server has not forgotten yet. It is
// rewritten whole on every change through a temporary file, fsync and rename
// (WriteFileAtomic), so a crash leaves the old or the new version, never a
// mix. A lock file, <state_dir>/leases.lock (flock), keeps a second agent off
// the same directory.
//
// Format: {"version": 1, "leases": [LeaseRecord...]}, see ToJson below. A
// file that cannot be read as that is refused by Load (the caller moves it
// aside with Quarantine and starts empty); a single record that is not valid
// is skipped and named in `problems`.
//
// Not thread-safe: the agent uses it from its one io_context thread.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "agent/leases/process_tree.hpp"
#include "common/file_util.hpp"
#include "common/result.hpp"

namespace gpuhub::agent::leases {

// Status of a lease whose command is being started: it is not reported yet.
inline constexpr const char* kStarting = "starting";

// One lease as the agent keeps it.
struct LeaseRecord {
  int64_t task_id = 0;
  std::string container;  // the runtime name
  std::string command;
  std::vector<int> gpus;
  int64_t deadline_ms = 0;
  int64_t kill_grace_ms = 30000;
  std::string exec_id;             // empty until the exec was created
  ProcessId process;               // the exec's host process; pid 0 until known
  std::vector<ProcessId> groups;   // the lease's process groups, as last collected
  std::string status = kStarting;  // kStarting or a proto status
  std::optional<int> exit_code;
  int64_t start_ms = 0;
  int64_t end_ms = 0;
  bool released = false;
  std::string message;
  bool operator==(const LeaseRecord&) const = default;
};

nlohmann::json ToJson(const LeaseRecord& r);
Result<LeaseRecord> LeaseRecordFromJson(const nlohmann::json& j);

struct LoadedLeases {
  std::vector<LeaseRecord> leases;
  std::vector<std::string> problems;  // records skipped, and why
};

class LeaseStore {
 public:
  // Creates `state_dir` (and its parents) when missing, the last one mode
  // 0700, and takes its lock.
  // kConflict when another agent holds it, kInternal when the directory
  // cannot be made or locked.
  static Result<LeaseStore> Open(const std::string& state_dir);

  const std::string& path() const { return path_; }

  // The leases in the file; none when there is no file. InvalidArgument when
  // the file is not a lease file of version 1, kInternal when it cannot be read.
  Result<LoadedLeases> Load() const;
  // Replaces the file's content with `leases`, atomically and durably.
  Status Save(const std::vector<LeaseRecord>& leases) const;
  // Renames the file to leases.json.bad-<unix ms> so a fresh one can start:
  // the new name, or an error.
  Result<std::string> Quarantine(int64_t now_ms) const;

 private:
  LeaseStore(std::string path, FileLock lock) : path_(std::move(path)), lock_(std::move(lock)) {}

  std::string path_;
  FileLock lock_;
};

// The file's text for `leases` (what Save writes). Pure.
std::string LeaseFileText(const std::vector<LeaseRecord>& leases);
// Parses a lease file's text (what Load reads). Pure.
Result<LoadedLeases> ParseLeaseFile(std::string_view text);

}  // namespace gpuhub::agent::leases
