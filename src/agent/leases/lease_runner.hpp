// LeaseRunner: runs the server's leased commands on this machine and ends
// them on time (docs/protocol.md, "Leases").
//
// task_start: the command runs as `sh -c <command>` in an exec of the
// user's container, with CUDA_VISIBLE_DEVICES and NVIDIA_VISIBLE_DEVICES set
// to the leased GPUs; its output goes to the server in task_output batches
// (OutputBatcher). The exec's host process and its descendants and groups
// are the lease's processes (ProcessTree). A lease ends when
//   - the command ends by itself: "completed" (exit 0) or "failed";
//   - its deadline passes (the agent's own clock, connected or not): "expired";
//   - task_stop: "cancelled".
// Ending sends SIGTERM to the lease's processes and groups, SIGKILL after the
// lease's kill_grace_ms; a lease is `released` once none of its processes is
// left (also after a command that ended by itself but left children behind).
//
// The server hears of each lease through `task` reports, one per change, and
// a `tasks` report of all leases after every (re)connection. A lease whose
// exec is still being started is not reported yet. Ended leases are kept
// (and reported) until task_forget.
//
// Every change is saved to the LeaseStore first. Restore takes the leases of
// a previous agent: a running one whose process still lives (same PID and
// start time) is watched again and its deadline kept (its output is lost: the
// new agent is not attached to the exec); one whose process is gone ended
// while no agent watched (exit code from the runtime's exec record when it
// still has one); one being ended is ended again.
//
// Without a DockerClient every task_start fails ("no container runtime"),
// but restored leases are still watched and ended.
//
// Everything runs on the io_context's one thread: every public method must
// be called there (or before it runs). The io_context, clock, docker client,
// store and send function must outlive the runner.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/leases/lease_store.hpp"
#include "agent/leases/output_batcher.hpp"
#include "agent/leases/process_tree.hpp"
#include "agent/runtime/docker_client.hpp"
#include "common/clock.hpp"
#include "proto/tasks.hpp"

namespace gpuhub::agent::leases {

struct RunnerOptions {
  // How often deadlines, endings and output are checked while a lease is active.
  std::chrono::milliseconds tick = std::chrono::milliseconds(100);
  // How often a running lease's processes are listed again (new groups).
  std::chrono::milliseconds rescan = std::chrono::seconds(5);
  // How long a new exec may take to show its host PID.
  std::chrono::milliseconds pid_wait = std::chrono::seconds(10);
};

// The message of a task_start refused for want of a runtime.
inline constexpr const char* kNoRuntimeMessage =
    "This machine's agent has no container runtime: start gpuhub-agent with --docker-host";

// The `task` report of a record. Pure.
proto::TaskReport ReportOf(const LeaseRecord& r);
// The exec's command and environment for a lease. Pure.
std::vector<std::string> ExecCommand(const std::string& command);
std::vector<std::string> ExecEnv(const std::vector<int>& gpus);

class LeaseRunner {
 public:
  // Sends one message to the server; false when it could not (not connected).
  using SendFn = std::function<bool(std::string_view type, nlohmann::json data)>;

  // `docker` null: no container runtime. `store` null: leases live in memory only.
  LeaseRunner(boost::asio::io_context& ioc, const Clock& clock, runtime::DockerClient* docker,
              const LeaseStore* store, ProcessTree tree, SendFn send, RunnerOptions options = {});
  LeaseRunner(const LeaseRunner&) = delete;
  LeaseRunner& operator=(const LeaseRunner&) = delete;

  // Takes over the leases of a previous run, once, before Start.
  void Restore(std::vector<LeaseRecord> leases);
  // Starts the periodic check.
  void Start();
  // Stops the periodic check and the starts in progress; the commands keep
  // running (a restarted agent resumes them). The state file is up to date.
  void Stop();
  // True while an exec's output is read or an exec is being started: work on
  // the io_context that Stop does not end (the caller stops the io_context).
  bool Busy() const { return streams_ > 0 || starts_ > 0; }

  // A server message: task_start, task_stop or task_forget; others are ignored.
  void OnMessage(const std::string& type, const nlohmann::json& data);
  // After each (re)connection: sends `tasks` with every reportable lease.
  void OnConnected();

  // One round of checks (deadlines, endings, output); the timer calls it.
  void Tick();

  // Every lease known, by task id.
  std::vector<LeaseRecord> Leases() const;
  std::optional<LeaseRecord> Find(int64_t task_id) const;

 private:
  enum class Phase {
    kLaunching,  // the exec is being started, or its PID looked for
    kRunning,    // the command runs
    kExiting,    // the command ended by itself; its exit code is asked for
    kEnding,     // the status is final; processes are being ended
    kDone,       // released
  };
  struct Lease {
    LeaseRecord rec;
    Phase phase = Phase::kLaunching;
    LeaseProcesses procs;
    std::optional<std::string> pending_end;  // expired/cancelled while starting
    bool streaming = false;                  // this agent reads the exec's output
    bool stream_done = false;
    std::optional<Error> stream_error;
    bool exit_asked = false;  // an InspectExec for the exit code was started
    bool exit_pending = false;
    bool term_sent = false;
    bool kill_logged = false;
    int64_t term_ms = 0;  // when the ending began (grace counts from here)
    int64_t scan_ms = 0;
    int64_t root_gone_ms = 0;  // when the exec's process was first seen gone
    OutputBatcher output;
    std::optional<proto::TaskReport> reported;  // last one sent on this connection
  };

  int64_t NowMs() const;
  Lease* Get(int64_t task_id);
  void HandleStart(const proto::TaskStart& start);
  void HandleStop(int64_t task_id);
  void HandleForget(int64_t task_id);

  boost::asio::awaitable<void> StartCommand(int64_t task_id);
  boost::asio::awaitable<void> ReadOutput(int64_t task_id, std::string exec_id);
  boost::asio::awaitable<void> AwaitPid(int64_t task_id);
  boost::asio::awaitable<void> FetchExit(int64_t task_id);
  boost::asio::awaitable<void> TickLoop();
  std::chrono::milliseconds NextTick() const;

  // Steps of the lease's life (synchronous, on the io_context's thread).
  // AwaitPid's answer to one InspectExec: true when it is done.
  bool OnExecInspected(Lease& l, const Result<runtime::ExecInfo>& info);
  void FailStart(Lease& l, const std::string& message);
  void Started(Lease& l);
  void OnOutput(int64_t task_id, std::string_view data);
  void OnStreamEnd(int64_t task_id, const Status& s);
  void CommandEnded(Lease& l);
  void ExitKnown(int64_t task_id, std::optional<int> code);
  void BeginEnd(Lease& l, const std::string& status);
  void Advance(Lease& l);
  void Rescan(Lease& l);
  bool RootAlive(const Lease& l) const;
  void Spawn(boost::asio::awaitable<void> work, const char* what);

  void Report(Lease& l, bool force);
  void FlushOutput(Lease& l, bool last);
  void Save();

  boost::asio::io_context& ioc_;
  const Clock& clock_;
  runtime::DockerClient* docker_;
  const LeaseStore* store_;
  const ProcessTree tree_;
  SendFn send_;
  const RunnerOptions options_;
  boost::asio::steady_timer timer_;
  std::map<int64_t, std::unique_ptr<Lease>> leases_;
  bool connected_ = false;
  bool stopping_ = false;
  int streams_ = 0;
  int starts_ = 0;
  std::optional<std::vector<LeaseRecord>> saved_;  // as last written
  std::string save_error_;                         // the last save failure logged
};

}  // namespace gpuhub::agent::leases
