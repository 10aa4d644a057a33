// ProcessTree: finds, signals and watches a lease's processes from the host,
// through /proc (its root is injectable, so tests use a fake tree).
//
// How a lease's processes are found. The command runs inside a container (an
// exec), the agent on the host, so the agent cannot wait() for it; it works
// from what the host's /proc shows:
//   - the root is the exec's host process (the Engine API's exec "Pid"),
//     identified by its PID and its start time (field 22 of /proc/<pid>/stat),
//     so a PID reused by an unrelated process is never taken for it;
//   - every descendant of a lease process (walking the ppid links of a
//     snapshot of /proc) is a lease process;
//   - every process in a process group led by a lease process is a lease
//     process, even after its parent died and it was re-parented to the
//     container's init: runc makes the exec a session and group leader, and
//     `sh -c` keeps its children in that group;
//   - what was known stays known while it lives (same PID and start time),
//     so a process that moved to a new group or session is still found.
// Zombies do not count: they hold no memory or GPU and cannot be signalled.
//
// How a lease is ended: SIGTERM to every process group of the lease
// (kill(-pgid)) and to every lease process, SIGKILL the same way once the
// grace period is over, and the lease is over when Collect finds no process.
// A group is signalled only when it is the lease's own: its leader is (or
// was, with the same start time) a lease process, and a lease process is in
// it now. So the group of the agent, of conmon or of init is never hit, and
// neither is a new group that reuses an old group's number. PID 0 and 1 and
// the agent itself are never signalled. Each process is re-read just before
// its signal, so only a PID reuse within that moment could misdirect one.
//
// The agent must run in the host's PID namespace (as a systemd service, not
// in a container), or the exec's PID means nothing here.
//
// Pure functions are thread-safe; a ProcessTree is immutable (thread-safe) but
// reads the file system and sends signals.
#pragma once

#include <sys/types.h>

#include <compare>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace gpuhub::agent::leases {

// One process as /proc/<pid>/stat shows it.
struct ProcStat {
  int64_t pid = 0;
  int64_t ppid = 0;
  int64_t pgid = 0;
  char state = '?';         // R, S, D, Z, T, ...
  uint64_t start_time = 0;  // clock ticks after boot
  bool operator==(const ProcStat&) const = default;
};

// A process's identity across PID reuse.
struct ProcessId {
  int64_t pid = 0;
  uint64_t start_time = 0;
  auto operator<=>(const ProcessId&) const = default;
};

// The processes of one lease, as last collected. Both lists sorted.
struct LeaseProcesses {
  std::vector<ProcessId> members;  // alive at the last Collect
  std::vector<ProcessId> groups;   // groups of the lease: pgid = leader's pid, leader's start
  bool operator==(const LeaseProcesses&) const = default;
};

// Parses the text of /proc/<pid>/stat (a comm may hold spaces and ')').
// InvalidArgument for anything else.
Result<ProcStat> ParsePidStat(std::string_view text);

// The lease's processes in `snapshot` (see the top of this file): the known
// members still alive, processes in the lease's groups, and all their
// descendants; groups are the known ones that still have a member plus those
// led by a member now. Pure.
LeaseProcesses Collect(const std::vector<ProcStat>& snapshot, const LeaseProcesses& known);

// Collect starting from one root process.
LeaseProcesses CollectFrom(const std::vector<ProcStat>& snapshot, const ProcessId& root);

class ProcessTree {
 public:
  using KillFn = std::function<int(pid_t pid, int sig)>;

  // `kill` defaults to ::kill; tests of a fake tree pass one that records.
  explicit ProcessTree(std::string proc_root = "/proc", KillFn kill = nullptr);

  const std::string& proc_root() const { return proc_root_; }

  // Every live process under the root now (zombies and unreadable entries
  // left out), sorted by pid.
  std::vector<ProcStat> Snapshot() const;
  // One process; nullopt when it is absent, unreadable or a zombie.
  std::optional<ProcStat> Read(int64_t pid) const;
  // True while `id` runs (same PID and start time, not a zombie).
  bool Alive(const ProcessId& id) const;
  // True when the process is in another PID namespace than the agent (so it
  // is inside a container); false when it is in ours or it cannot tell.
  bool InForeignPidNamespace(int64_t pid) const;

  // Sends `sig` to each of p's groups that a member of `snapshot` is in (and
  // that is the lease's, see above), then to each member still alive. The
  // number of signals delivered.
  int Signal(const LeaseProcesses& p, const std::vector<ProcStat>& snapshot, int sig) const;

 private:
  std::string proc_root_;
  KillFn kill_;
};

}  // namespace gpuhub::agent::leases
