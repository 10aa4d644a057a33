#include "agent/leases/lease_runner.hpp"

#include <signal.h>
#include <spdlog/spdlog.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <exception>

namespace gpuhub::agent::leases {
namespace {

namespace net = boost::asio;
using nlohmann::json;
using std::chrono::milliseconds;

constexpr const char* kUnknownExit =
    "the command ended while gpuhub-agent was not running; its exit code is unknown";
constexpr const char* kRestartedWhileStarting = "gpuhub-agent restarted while starting the command";
constexpr const char* kTooLate = "the lease's deadline passed before the command could start";
constexpr milliseconds kPidPoll{20};
constexpr milliseconds kExitPoll{100};
constexpr int kExitPolls = 30;
constexpr int64_t kRootGoneMs = 2000;

std::string StartFailure(const std::string& container, const Error& e) {
  return "cannot start the command in container " + container + ": " + e.message;
}

std::string JoinGpus(const std::vector<int>& gpus) {
  std::string out;
  for (size_t i = 0; i < gpus.size(); ++i) {
    if (i > 0) out += ",";
    out += std::to_string(gpus[i]);
  }
  return out;
}

std::string EndStatus(std::optional<int> code) {
  if (code && *code == 0) return "completed";
  return "failed";
}

void LogException(const char* what, std::exception_ptr e) {
  if (!e) return;
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    spdlog::error("lease runner: {} failed: {}", what, x.what());
  } catch (...) {
    spdlog::error("lease runner: {} failed", what);
  }
}

}  // namespace

proto::TaskReport ReportOf(const LeaseRecord& r) {
  proto::TaskReport t;
  t.task_id = r.task_id;
  t.status = r.status;
  t.exit_code = r.exit_code;
  t.start_ms = r.start_ms;
  t.end_ms = r.end_ms;
  t.released = r.released;
  t.message = r.message;
  return t;
}

std::vector<std::string> ExecCommand(const std::string& command) {
  std::vector<std::string> cmd;
  cmd.push_back("sh");
  cmd.push_back("-c");
  cmd.push_back(command);
  return cmd;
}

std::vector<std::string> ExecEnv(const std::vector<int>& gpus) {
  std::string list = JoinGpus(gpus);
  std::vector<std::string> env;
  env.push_back("CUDA_VISIBLE_DEVICES=" + list);
  env.push_back("NVIDIA_VISIBLE_DEVICES=" + list);
  return env;
}

LeaseRunner::LeaseRunner(net::io_context& ioc, const Clock& clock, runtime::DockerClient* docker,
                         const LeaseStore* store, ProcessTree tree, SendFn send,
                         RunnerOptions options)
    : ioc_(ioc),
      clock_(clock),
      docker_(docker),
      store_(store),
      tree_(std::move(tree)),
      send_(std::move(send)),
      options_(options),
      timer_(ioc) {}

int64_t LeaseRunner::NowMs() const {
  return std::chrono::duration_cast<milliseconds>(clock_.Now().time_since_epoch()).count();
}

LeaseRunner::Lease* LeaseRunner::Get(int64_t task_id) {
  auto it = leases_.find(task_id);
  return it == leases_.end() ? nullptr : it->second.get();
}

std::vector<LeaseRecord> LeaseRunner::Leases() const {
  std::vector<LeaseRecord> out;
  for (const auto& [id, l] : leases_) out.push_back(l->rec);
  return out;
}

std::optional<LeaseRecord> LeaseRunner::Find(int64_t task_id) const {
  auto it = leases_.find(task_id);
  if (it == leases_.end()) return std::nullopt;
  return it->second->rec;
}

void LeaseRunner::Spawn(net::awaitable<void> work, const char* what) {
  net::co_spawn(ioc_, std::move(work), [what](std::exception_ptr e) { LogException(what, e); });
}

// --- Restore, Start, Stop --------------------------------------------------

void LeaseRunner::Restore(std::vector<LeaseRecord> records) {
  const int64_t now = NowMs();
  for (auto& rec : records) {
    auto l = std::make_unique<Lease>();
    l->rec = std::move(rec);
    Lease& lease = *l;
    const int64_t id = lease.rec.task_id;
    leases_[id] = std::move(l);
    lease.procs.groups = lease.rec.groups;
    if (lease.rec.process.pid > 0) lease.procs.members.push_back(lease.rec.process);
    if (lease.rec.released) {
      lease.phase = Phase::kDone;
      continue;
    }
    if (proto::IsFinalTaskStatus(lease.rec.status)) {
      spdlog::info("task {}: {}, its processes are still being ended", id, lease.rec.status);
      lease.phase = Phase::kEnding;
      lease.term_ms = lease.rec.end_ms > 0 ? lease.rec.end_ms : now;
      continue;
    }
    const bool can_ask = docker_ != nullptr && !lease.rec.exec_id.empty();
    if (lease.rec.status == "running" && lease.rec.process.pid > 0) {
      if (tree_.Alive(lease.rec.process)) {
        spdlog::info("task {}: still running (pid {}), watched again; its output is not captured",
                     id, lease.rec.process.pid);
        lease.phase = Phase::kRunning;
        Rescan(lease);
      } else {
        spdlog::info("task {}: ended while gpuhub-agent was not running", id);
        CommandEnded(lease);
      }
      continue;
    }
    if (can_ask) {  // starting, or running without a known PID: ask the runtime
      lease.phase = Phase::kLaunching;
      ++starts_;
      Spawn(AwaitPid(id), "looking for an exec");
      continue;
    }
    if (lease.rec.status == "running") {
      CommandEnded(lease);
    } else {
      FailStart(lease, kRestartedWhileStarting);
    }
  }
  Save();
}

void LeaseRunner::Start() { Spawn(TickLoop(), "the lease timer"); }

void LeaseRunner::Stop() {
  stopping_ = true;
  timer_.cancel();
  Save();
}

net::awaitable<void> LeaseRunner::TickLoop() {
  while (!stopping_) {
    Tick();
    timer_.expires_after(NextTick());
    boost::system::error_code ec;
    co_await timer_.async_wait(net::redirect_error(net::use_awaitable, ec));
  }
}

milliseconds LeaseRunner::NextTick() const {
  for (const auto& [id, l] : leases_) {
    if (l->phase != Phase::kDone) return options_.tick;
  }
  return milliseconds(1000);  // nothing to watch: only a new lease wakes it earlier
}

// --- Messages ----------------------------------------------------------------

void LeaseRunner::OnMessage(const std::string& type, const json& data) {
  if (type == "task_start") {
    auto start = proto::TaskStartFromJson(data);
    if (!start.ok()) {
      spdlog::warn("bad task_start from the server: {}", start.error().message);
      return;
    }
    HandleStart(*start);
  } else if (type == "task_stop" || type == "task_forget") {
    auto id = proto::TaskIdFromJson(data);
    if (!id.ok()) {
      spdlog::warn("bad {} from the server: {}", type, id.error().message);
      return;
    }
    if (type == "task_stop") {
      HandleStop(*id);
    } else {
      HandleForget(*id);
    }
  }
}

void LeaseRunner::OnConnected() {
  connected_ = true;
  std::vector<proto::TaskReport> all;
  for (auto& [id, l] : leases_) {
    l->reported.reset();
    if (l->rec.status == kStarting) continue;
    all.push_back(ReportOf(l->rec));
  }
  if (!send_("tasks", proto::TasksReportJson(all))) {
    connected_ = false;
    return;
  }
  for (auto& [id, l] : leases_) {
    if (l->rec.status != kStarting) l->reported = ReportOf(l->rec);
  }
}

void LeaseRunner::HandleStart(const proto::TaskStart& start) {
  if (Lease* known = Get(start.task_id)) {
    spdlog::debug("task {}: task_start again, re-reported", start.task_id);
    Report(*known, true);
    return;
  }
  auto l = std::make_unique<Lease>();
  Lease& lease = *l;
  lease.rec.task_id = start.task_id;
  lease.rec.container = start.container;
  lease.rec.command = start.command;
  lease.rec.gpus = start.gpus;
  lease.rec.deadline_ms = start.deadline_ms;
  lease.rec.kill_grace_ms = start.kill_grace_ms;
  leases_[start.task_id] = std::move(l);
  if (docker_ == nullptr) {
    FailStart(lease, kNoRuntimeMessage);
    return;
  }
  const int64_t now = NowMs();
  if (start.deadline_ms <= now) {
    lease.rec.status = "expired";
    lease.rec.end_ms = now;
    lease.rec.released = true;
    lease.rec.message = kTooLate;
    lease.phase = Phase::kDone;
    Save();
    Report(lease, false);
    return;
  }
  spdlog::info("task {}: starting in {} on GPUs [{}]", start.task_id, start.container,
               JoinGpus(start.gpus));
  lease.phase = Phase::kLaunching;
  Save();
  ++starts_;
  Spawn(StartCommand(start.task_id), "starting a command");
  timer_.cancel();  // tick soon
}

void LeaseRunner::HandleStop(int64_t task_id) {
  Lease* l = Get(task_id);
  if (l == nullptr) {
    spdlog::info("task_stop for task {}, which this agent does not know", task_id);
    return;
  }
  BeginEnd(*l, "cancelled");
}

void LeaseRunner::HandleForget(int64_t task_id) {
  Lease* l = Get(task_id);
  if (l == nullptr) return;
  if (l->phase != Phase::kDone) {
    spdlog::warn("task_forget for task {}, which is not released yet: kept", task_id);
    return;
  }
  leases_.erase(task_id);
  Save();
}

// --- Starting ------------------------------------------------------------------

net::awaitable<void> LeaseRunner::StartCommand(int64_t task_id) {
  Lease* l = Get(task_id);
  if (l == nullptr) {
    --starts_;
    co_return;
  }
  const std::string container = l->rec.container;
  auto exec =
      co_await docker_->CreateExec(container, ExecCommand(l->rec.command), ExecEnv(l->rec.gpus));
  l = Get(task_id);
  if (stopping_ || l == nullptr) {
    --starts_;
    co_return;
  }
  if (!exec.ok()) {
    --starts_;
    FailStart(*l, StartFailure(container, exec.error()));
    co_return;
  }
  l->rec.exec_id = *exec;
  l->streaming = true;
  Save();
  ++streams_;
  Spawn(ReadOutput(task_id, *exec), "reading a command's output");
  co_await AwaitPid(task_id);  // ends the start (--starts_)
}

net::awaitable<void> LeaseRunner::ReadOutput(int64_t task_id, std::string exec_id) {
  Status s = co_await docker_->StartExec(
      exec_id, [this, task_id](int, std::string_view data) { OnOutput(task_id, data); });
  --streams_;
  if (!stopping_) OnStreamEnd(task_id, s);
}

net::awaitable<void> LeaseRunner::AwaitPid(int64_t task_id) {
  const auto give_up = std::chrono::steady_clock::now() + options_.pid_wait;
  net::steady_timer wait(ioc_);
  for (;;) {
    Lease* l = Get(task_id);
    if (l == nullptr) break;
    const std::string exec_id = l->rec.exec_id;
    auto info = co_await docker_->InspectExec(exec_id);
    l = Get(task_id);
    if (stopping_ || l == nullptr) break;
    if (OnExecInspected(*l, info)) break;
    if (std::chrono::steady_clock::now() >= give_up) {
      spdlog::error(
          "task {}: the container runtime did not show the exec's process within {} ms; its "
          "processes cannot be ended by the agent",
          task_id, options_.pid_wait.count());
      Started(*l);
      break;
    }
    wait.expires_after(kPidPoll);
    boost::system::error_code ec;
    co_await wait.async_wait(net::redirect_error(net::use_awaitable, ec));
  }
  --starts_;
}

bool LeaseRunner::OnExecInspected(Lease& l, const Result<runtime::ExecInfo>& info) {
  const int64_t id = l.rec.task_id;
  if (info.ok() && info->pid > 0) {
    auto stat = tree_.Read(info->pid);
    if (!stat) {
      // Gone already (a short command): its end follows from the exec's state.
      if (info->running) return false;
    } else if (!tree_.InForeignPidNamespace(info->pid)) {
      spdlog::error(
          "task {}: the exec's process {} is not inside a container as this agent sees it "
          "(run gpuhub-agent in the host's PID namespace); it will not be signalled",
          id, info->pid);
    } else {
      l.rec.process = ProcessId{stat->pid, stat->start_time};
    }
    Started(l);
    return true;
  }
  if (l.streaming) {  // a start of this agent
    if (l.stream_done && l.stream_error) {
      FailStart(l, StartFailure(l.rec.container, *l.stream_error));
      return true;
    }
    if (l.stream_done) {  // ended before its PID was seen
      Started(l);
      return true;
    }
    if (!info.ok()) spdlog::debug("task {}: exec inspect: {}", id, info.error().message);
    return false;
  }
  // A lease of a previous agent: a running exec shows its PID, so this one ended or never ran.
  if (info.ok() && info->running) return false;
  if (l.rec.status == kStarting) {
    FailStart(l, kRestartedWhileStarting);
  } else {
    l.phase = Phase::kRunning;
    CommandEnded(l);
  }
  return true;
}

void LeaseRunner::FailStart(Lease& l, const std::string& message) {
  spdlog::warn("task {}: failed to start: {}", l.rec.task_id, message);
  // Stopped (or out of time) while starting: that is its end, whatever the start did.
  l.rec.status = l.pending_end.value_or("failed");
  l.rec.exit_code.reset();
  l.rec.end_ms = NowMs();
  l.rec.released = true;
  l.rec.message = message;
  l.phase = Phase::kDone;
  Save();
  Report(l, false);
}

void LeaseRunner::Started(Lease& l) {
  const int64_t now = NowMs();
  if (l.rec.status == kStarting) {
    l.rec.status = "running";
    l.rec.start_ms = now;
    spdlog::info("task {}: running (pid {})", l.rec.task_id, l.rec.process.pid);
  }
  l.phase = Phase::kRunning;
  if (l.rec.process.pid > 0) {
    l.procs.members = {l.rec.process};
    Rescan(l);
  }
  Save();
  Report(l, false);
  if (l.pending_end) {
    BeginEnd(l, *l.pending_end);
  } else if (now >= l.rec.deadline_ms) {
    BeginEnd(l, "expired");
  } else if ((!l.streaming || l.stream_done) && !RootAlive(l)) {
    CommandEnded(l);
  }
}

// --- Running -------------------------------------------------------------------

void LeaseRunner::OnOutput(int64_t task_id, std::string_view data) {
  Lease* l = Get(task_id);
  if (l == nullptr) return;
  l->output.Append(data, NowMs());
  if (l->output.held() >= OutputBatcher::kBatchBytes) FlushOutput(*l, false);
}

void LeaseRunner::OnStreamEnd(int64_t task_id, const Status& s) {
  Lease* l = Get(task_id);
  if (l == nullptr) return;
  l->streaming = l->phase == Phase::kLaunching;  // AwaitPid still tells its start from a resume
  l->stream_done = true;
  if (!s.ok()) {
    l->stream_error = s.error();
    if (l->phase != Phase::kLaunching) {
      spdlog::warn("task {}: reading its output failed: {}", task_id, s.error().message);
    }
  }
  switch (l->phase) {
    case Phase::kLaunching:
      break;  // AwaitPid decides
    case Phase::kRunning:
      if (RootAlive(*l)) {
        spdlog::warn("task {}: its output ended but the command runs on; output is not captured",
                     task_id);
      } else {
        CommandEnded(*l);
      }
      break;
    case Phase::kEnding:
      FlushOutput(*l, true);
      Advance(*l);
      break;
    case Phase::kExiting:
    case Phase::kDone:
      FlushOutput(*l, true);
      break;
  }
}

bool LeaseRunner::RootAlive(const Lease& l) const {
  return l.rec.process.pid > 0 && tree_.Alive(l.rec.process);
}

void LeaseRunner::Rescan(Lease& l) {
  l.scan_ms = NowMs();
  LeaseProcesses known = l.procs;
  known.groups = l.rec.groups;
  l.procs = Collect(tree_.Snapshot(), known);
  // Keep groups that were seen: an empty group is gone for good, and Collect drops it.
  l.rec.groups = l.procs.groups;
}

void LeaseRunner::CommandEnded(Lease& l) {
  l.phase = Phase::kExiting;
  FlushOutput(l, true);
  if (docker_ == nullptr || l.rec.exec_id.empty()) {
    ExitKnown(l.rec.task_id, std::nullopt);
    return;
  }
  l.exit_asked = true;
  l.exit_pending = true;
  Spawn(FetchExit(l.rec.task_id), "asking for an exit code");
}

net::awaitable<void> LeaseRunner::FetchExit(int64_t task_id) {
  std::optional<int> code;
  net::steady_timer wait(ioc_);
  for (int i = 0; i < kExitPolls; ++i) {
    Lease* l = Get(task_id);
    if (l == nullptr) co_return;
    const std::string exec_id = l->rec.exec_id;
    auto info = co_await docker_->InspectExec(exec_id);
    if (stopping_) co_return;
    if (!info.ok()) {
      spdlog::info("task {}: no exit code from the runtime: {}", task_id, info.error().message);
      break;
    }
    if (!info->running) {
      code = info->exit_code;
      break;
    }
    wait.expires_after(kExitPoll);
    boost::system::error_code ec;
    co_await wait.async_wait(net::redirect_error(net::use_awaitable, ec));
  }
  ExitKnown(task_id, code);
}

void LeaseRunner::ExitKnown(int64_t task_id, std::optional<int> code) {
  Lease* l = Get(task_id);
  if (l == nullptr) return;
  l->exit_pending = false;
  if (l->phase == Phase::kExiting) {
    l->rec.exit_code = code;
    l->rec.end_ms = NowMs();
    l->rec.status = EndStatus(code);
    if (!code) l->rec.message = kUnknownExit;
    spdlog::info("task {}: {} (exit code {})", task_id, l->rec.status,
                 code ? std::to_string(*code) : std::string("unknown"));
    l->phase = Phase::kEnding;
    l->term_ms = l->rec.end_ms;
    l->term_sent = false;
  } else if (l->phase == Phase::kEnding) {
    if (!l->rec.exit_code) l->rec.exit_code = code;
  } else {
    return;
  }
  Advance(*l);
  Save();
  Report(*l, false);
}

// --- Ending --------------------------------------------------------------------

void LeaseRunner::BeginEnd(Lease& l, const std::string& status) {
  switch (l.phase) {
    case Phase::kLaunching:
      if (!l.pending_end) l.pending_end = status;
      return;
    case Phase::kRunning:
      break;
    case Phase::kExiting:
    case Phase::kEnding:
    case Phase::kDone:
      Report(l, true);
      return;
  }
  spdlog::info("task {}: {}; ending its processes", l.rec.task_id, status);
  l.rec.status = status;
  l.rec.end_ms = NowMs();
  l.phase = Phase::kEnding;
  l.term_ms = l.rec.end_ms;
  l.term_sent = false;
  Advance(l);
  Save();
  Report(l, false);
}

void LeaseRunner::Advance(Lease& l) {
  if (l.phase != Phase::kEnding) return;
  const int64_t now = NowMs();
  auto snapshot = tree_.Snapshot();
  LeaseProcesses known = l.procs;
  known.groups = l.rec.groups;
  if (l.rec.process.pid > 0) known.members.push_back(l.rec.process);
  l.procs = Collect(snapshot, known);
  l.rec.groups = l.procs.groups;
  const bool unknown_but_running = l.rec.process.pid == 0 && l.streaming && !l.stream_done;
  if (!l.procs.members.empty() || unknown_but_running) {
    if (now - l.term_ms >= l.rec.kill_grace_ms) {
      if (!l.kill_logged) {
        spdlog::info("task {}: {} process(es) left after {} ms: SIGKILL", l.rec.task_id,
                     l.procs.members.size(), l.rec.kill_grace_ms);
        l.kill_logged = true;
      }
      tree_.Signal(l.procs, snapshot, SIGKILL);
    } else if (!l.term_sent) {
      tree_.Signal(l.procs, snapshot, SIGTERM);
      l.term_sent = true;
    }
    return;
  }
  if (!l.rec.exit_code && docker_ != nullptr && !l.rec.exec_id.empty() && !l.exit_asked) {
    l.exit_asked = true;
    l.exit_pending = true;
    Spawn(FetchExit(l.rec.task_id), "asking for an exit code");
    return;
  }
  if (l.exit_pending) return;
  spdlog::info("task {}: released", l.rec.task_id);
  l.rec.released = true;
  l.phase = Phase::kDone;
  FlushOutput(l, true);
}

// --- The periodic check ------------------------------------------------------

void LeaseRunner::Tick() {
  const int64_t now = NowMs();
  for (auto& [id, lp] : leases_) {
    Lease& l = *lp;
    switch (l.phase) {
      case Phase::kRunning:
        if (now >= l.rec.deadline_ms) {
          BeginEnd(l, "expired");
        } else if (l.rec.process.pid > 0 && !RootAlive(l)) {
          // A command whose children keep its output open: its end counts after a while.
          if (l.root_gone_ms == 0) l.root_gone_ms = now;
          if (!l.streaming || now - l.root_gone_ms >= kRootGoneMs) CommandEnded(l);
        } else if (l.rec.process.pid > 0 && now - l.scan_ms >= options_.rescan.count()) {
          Rescan(l);
          Save();
        }
        break;
      case Phase::kLaunching:
        if (now >= l.rec.deadline_ms) BeginEnd(l, "expired");
        break;
      case Phase::kEnding:
        Advance(l);
        if (l.phase == Phase::kDone) {
          Save();
          Report(l, false);
        }
        break;
      case Phase::kExiting:
      case Phase::kDone:
        break;
    }
    FlushOutput(l, false);
  }
}

// --- Reports and the state file ----------------------------------------------

void LeaseRunner::Report(Lease& l, bool force) {
  // Before the first `tasks` of a connection nothing goes out: that report carries it.
  if (!connected_ || l.rec.status == kStarting) return;
  proto::TaskReport r = ReportOf(l.rec);
  if (!force && l.reported && *l.reported == r) return;
  if (send_("task", proto::ToJson(r))) {
    l.reported = r;
  } else {
    connected_ = false;
  }
}

void LeaseRunner::FlushOutput(Lease& l, bool last) {
  if (!connected_ || l.output.empty()) return;
  auto data = l.output.Take(NowMs(), last);
  if (!data) return;
  proto::TaskOutput out;
  out.task_id = l.rec.task_id;
  out.data = std::move(*data);
  if (!send_("task_output", proto::ToJson(out))) connected_ = false;
}

void LeaseRunner::Save() {
  if (store_ == nullptr) return;
  std::vector<LeaseRecord> all = Leases();
  if (saved_ && *saved_ == all) return;
  Status s = store_->Save(all);
  if (!s.ok()) {
    if (s.error().message != save_error_) {
      spdlog::error("cannot save the leases: {}", s.error().message);
      save_error_ = s.error().message;
    }
    return;
  }
  save_error_.clear();
  saved_ = std::move(all);
}

}  // namespace gpuhub::agent::leases
