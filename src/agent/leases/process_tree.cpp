#include "agent/leases/process_tree.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <map>
#include <set>
#include <unordered_map>

namespace gpuhub::agent::leases {
namespace {

// A small file (a /proc entry) read whole; nullopt when it cannot be read.
std::optional<std::string> ReadSmall(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::string out;
  char buf[1024];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      ::close(fd);
      return std::nullopt;
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > 8192) break;  // a stat line is far shorter
  }
  ::close(fd);
  return out;
}

std::string ReadLink(const std::string& path) {
  char buf[256];
  ssize_t n = ::readlink(path.c_str(), buf, sizeof buf);
  if (n <= 0 || static_cast<size_t>(n) >= sizeof buf) return {};
  return std::string(buf, static_cast<size_t>(n));
}

template <typename T>
bool ParseNumber(std::string_view text, T& out) {
  auto r = std::from_chars(text.data(), text.data() + text.size(), out);
  return r.ec == std::errc() && r.ptr == text.data() + text.size();
}

bool IsZombie(char state) { return state == 'Z' || state == 'X' || state == 'x'; }

}  // namespace

Result<ProcStat> ParsePidStat(std::string_view text) {
  auto bad = [] { return InvalidArgument("not a /proc/<pid>/stat line"); };
  size_t open = text.find(" (");
  size_t close = text.rfind(')');
  if (open == std::string_view::npos || close == std::string_view::npos || close < open) {
    return bad();
  }
  ProcStat s;
  if (!ParseNumber(text.substr(0, open), s.pid) || s.pid <= 0) return bad();
  // The fields after the comm, from field 3 (state) on.
  std::vector<std::string_view> f;
  std::string_view rest = text.substr(close + 1);
  while (!rest.empty() && f.size() < 20) {
    size_t start = rest.find_first_not_of(" \n");
    if (start == std::string_view::npos) break;
    rest.remove_prefix(start);
    size_t end = rest.find_first_of(" \n");
    f.push_back(rest.substr(0, end));
    rest.remove_prefix(end == std::string_view::npos ? rest.size() : end);
  }
  if (f.size() < 20 || f[0].size() != 1) return bad();
  s.state = f[0][0];
  if (!ParseNumber(f[1], s.ppid) || !ParseNumber(f[2], s.pgid) ||
      !ParseNumber(f[19], s.start_time)) {
    return bad();
  }
  return s;
}

LeaseProcesses Collect(const std::vector<ProcStat>& snapshot, const LeaseProcesses& known) {
  std::unordered_map<int64_t, const ProcStat*> by_pid;
  std::unordered_multimap<int64_t, const ProcStat*> children;
  for (const auto& p : snapshot) {
    if (IsZombie(p.state)) continue;
    by_pid[p.pid] = &p;
    children.emplace(p.ppid, &p);
  }
  // The known groups whose number was not taken by a new leader.
  std::map<int64_t, ProcessId> groups;
  for (const auto& g : known.groups) {
    auto it = by_pid.find(g.pid);
    if (it == by_pid.end() || it->second->start_time == g.start_time) groups[g.pid] = g;
  }
  std::set<int64_t> in;
  std::vector<const ProcStat*> queue;
  auto add = [&](const ProcStat* p) {
    if (in.insert(p->pid).second) queue.push_back(p);
  };
  for (const auto& m : known.members) {
    auto it = by_pid.find(m.pid);
    if (it != by_pid.end() && it->second->start_time == m.start_time) add(it->second);
  }
  bool more_groups = true;
  while (more_groups) {
    more_groups = false;
    for (const auto& [pid, p] : by_pid) {
      if (groups.count(p->pgid)) add(p);
    }
    while (!queue.empty()) {
      const ProcStat* p = queue.back();
      queue.pop_back();
      auto [first, last] = children.equal_range(p->pid);
      for (auto it = first; it != last; ++it) add(it->second);
      if (p->pid == p->pgid && !groups.count(p->pid)) {
        groups[p->pid] = ProcessId{p->pid, p->start_time};
        more_groups = true;
      }
    }
  }
  LeaseProcesses out;
  std::set<int64_t> member_groups;
  for (int64_t pid : in) {
    const ProcStat* p = by_pid[pid];
    out.members.push_back(ProcessId{p->pid, p->start_time});
    member_groups.insert(p->pgid);
  }
  for (const auto& [pgid, leader] : groups) {
    if (member_groups.count(pgid)) out.groups.push_back(leader);
  }
  return out;
}

LeaseProcesses CollectFrom(const std::vector<ProcStat>& snapshot, const ProcessId& root) {
  LeaseProcesses known;
  known.members.push_back(root);
  return Collect(snapshot, known);
}

ProcessTree::ProcessTree(std::string proc_root, KillFn kill)
    : proc_root_(std::move(proc_root)), kill_(std::move(kill)) {
  if (!kill_) kill_ = [](pid_t pid, int sig) { return ::kill(pid, sig); };
}

std::vector<ProcStat> ProcessTree::Snapshot() const {
  std::vector<ProcStat> out;
  DIR* dir = ::opendir(proc_root_.c_str());
  if (dir == nullptr) return out;
  while (const dirent* e = ::readdir(dir)) {
    int64_t pid = 0;
    if (!ParseNumber(std::string_view(e->d_name), pid) || pid <= 0) continue;
    if (auto s = Read(pid)) out.push_back(*s);
  }
  ::closedir(dir);
  std::sort(out.begin(), out.end(),
            [](const ProcStat& a, const ProcStat& b) { return a.pid < b.pid; });
  return out;
}

std::optional<ProcStat> ProcessTree::Read(int64_t pid) const {
  if (pid <= 0) return std::nullopt;
  auto text = ReadSmall(proc_root_ + "/" + std::to_string(pid) + "/stat");
  if (!text) return std::nullopt;
  auto s = ParsePidStat(*text);
  if (!s.ok() || s->pid != pid || IsZombie(s->state)) return std::nullopt;
  return *s;
}

bool ProcessTree::Alive(const ProcessId& id) const {
  auto s = Read(id.pid);
  return s && s->start_time == id.start_time;
}

bool ProcessTree::InForeignPidNamespace(int64_t pid) const {
  std::string mine = ReadLink(proc_root_ + "/self/ns/pid");
  std::string theirs = ReadLink(proc_root_ + "/" + std::to_string(pid) + "/ns/pid");
  return !mine.empty() && !theirs.empty() && mine != theirs;
}

int ProcessTree::Signal(const LeaseProcesses& p, const std::vector<ProcStat>& snapshot,
                        int sig) const {
  const int64_t self = ::getpid();
  const int64_t own_group = ::getpgrp();
  std::set<ProcessId> members(p.members.begin(), p.members.end());
  std::map<int64_t, uint64_t> start_of;  // pid -> start time, in the snapshot
  std::set<int64_t> member_groups;
  for (const auto& s : snapshot) {
    if (IsZombie(s.state)) continue;
    start_of[s.pid] = s.start_time;
    if (members.count(ProcessId{s.pid, s.start_time})) member_groups.insert(s.pgid);
  }
  int delivered = 0;
  for (const auto& g : p.groups) {
    if (g.pid <= 1 || g.pid == own_group || !member_groups.count(g.pid)) continue;
    auto leader = start_of.find(g.pid);
    if (leader != start_of.end() && leader->second != g.start_time) continue;  // a new group
    if (kill_(static_cast<pid_t>(-g.pid), sig) == 0) ++delivered;
  }
  for (const auto& m : p.members) {
    if (m.pid <= 1 || m.pid == self || !Alive(m)) continue;
    if (kill_(static_cast<pid_t>(m.pid), sig) == 0) ++delivered;
  }
  return delivered;
}

}  // namespace gpuhub::agent::leases
