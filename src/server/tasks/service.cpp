#include "server/tasks/service.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/file_util.hpp"
#include "common/time_util.hpp"

namespace gpuhub::tasks {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;

constexpr size_t kLogKeep = 64 << 10;
constexpr auto kListWindow = std::chrono::hours(24);

bool IsFinal(const std::string& status) { return status != "queued" && status != "running"; }

json TimeOrNull(const std::optional<TimePoint>& t) {
  return t ? json(FormatIso8601(*t)) : json(nullptr);
}

int64_t ToMs(TimePoint t) {
  return std::chrono::duration_cast<milliseconds>(t.time_since_epoch()).count();
}
TimePoint FromMs(int64_t ms) {
  return TimePoint(std::chrono::duration_cast<TimePoint::duration>(milliseconds(ms)));
}

Error PermissionDenied() { return {ErrorCode::kPermissionDenied, "Permission denied"}; }

sched::Task SchedTask(const store::Task& t) {
  sched::Task s;
  s.id = t.id;
  s.submit_time = t.submit_time;
  s.duration = t.duration;
  s.gpu_count = t.gpu_count;
  s.gpus = t.gpus_requested;
  return s;
}

std::string LogPath(const std::string& dir, int64_t id) {
  return dir + "/" + std::to_string(id) + ".log";
}

}  // namespace

Result<std::unique_ptr<TaskService>> TaskService::Open(store::Store& store, TaskLink& link,
                                                       const Clock& clock, TaskOptions options) {
  if (!options.log_dir.empty()) {
    if (auto s = MakeDirs(options.log_dir); !s.ok()) return s.error();
  }
  std::unique_ptr<TaskService> service(new TaskService(store, link, clock, std::move(options)));
  store::TaskFilter filter;
  filter.unreleased_only = true;
  auto tasks = store.ListTasks(filter);
  if (!tasks.ok()) return tasks.error();
  std::lock_guard lock(service->mu_);
  const TimePoint now = clock.Now();
  // Oldest first, so that leases are restored before the queue behind them.
  for (auto it = tasks->rbegin(); it != tasks->rend(); ++it) {
    const store::Task& t = *it;
    Machine& m = service->MachineLocked(t.machine_id);
    if (t.status == "queued") {
      if (auto s = m.queue.Enqueue(SchedTask(t)); !s.ok()) {
        spdlog::error("task {}: cannot queue it again: {}", t.id, s.error().message);
      }
      continue;
    }
    TimePoint end = (t.start_time ? *t.start_time : now) + t.duration;
    if (auto s = m.queue.Restore(t.id, t.gpu_ids, end); !s.ok()) {
      spdlog::error("task {}: cannot restore its lease: {}", t.id, s.error().message);
      continue;
    }
    if (IsFinal(t.status)) m.queue.Finish(t.id, t.end_time ? *t.end_time : now);
  }
  return service;
}

TaskService::TaskService(store::Store& store, TaskLink& link, const Clock& clock,
                         TaskOptions options)
    : store_(store), link_(link), clock_(clock), options_(std::move(options)), inserts_(store) {}

TaskService::Machine& TaskService::MachineLocked(const std::string& id) {
  auto it = machines_.find(id);
  if (it == machines_.end()) {
    int gpus = gpu_counts_.contains(id) ? gpu_counts_[id] : 0;
    it = machines_.emplace(id, std::make_unique<Machine>(gpus)).first;
  }
  return *it->second;
}

void TaskService::SetGpuCount(const std::string& machine_id, int gpus) {
  std::lock_guard lock(mu_);
  gpu_counts_[machine_id] = gpus;
  Machine& m = MachineLocked(machine_id);
  if (m.gpus == gpus) return;
  m.gpus = gpus;
  m.queue.SetGpuCount(gpus);
  ScheduleLocked(machine_id, m);
}

void TaskService::SetOnline(const std::string& machine_id, bool online) {
  std::lock_guard lock(mu_);
  Machine& m = MachineLocked(machine_id);
  if (m.online == online) return;
  m.online = online;
  if (!online) m.offline_since = clock_.Now();
  // Starting queued leases waits for the agent's tasks report (OnTasksReport).
}

Result<store::Task> TaskService::Prepare(const accounts::Principal& caller, const TaskRequest& r) {
  auto machines = store_.ListMachines();
  if (!machines.ok()) return machines.error();
  if (std::none_of(machines->begin(), machines->end(),
                   [&](const store::Machine& m) { return m.id == r.machine_id; })) {
    return NotFound("Machine not found");
  }
  auto containers = store_.ListContainers(caller.user_id, r.machine_id);
  if (!containers.ok()) return containers.error();
  auto container =
      std::find_if(containers->begin(), containers->end(),
                   [&](const store::Container& c) { return c.name == r.containername; });
  if (container == containers->end()) return NotFound("Container not found");
  if (r.duration > options_.max_duration) {
    return InvalidArgument(
        "duration must be at most " +
        std::to_string(
            std::chrono::duration_cast<std::chrono::hours>(options_.max_duration).count()) +
        "h");
  }

  std::lock_guard lock(mu_);
  Machine& m = MachineLocked(r.machine_id);
  const int gpus = m.gpus;
  store::Task t;
  if (r.gpu_count) {
    if (*r.gpu_count > gpus) {
      return InvalidArgument("gpu_count must be between 1 and " + std::to_string(gpus) +
                             " (the GPUs of machine " + r.machine_id + ")");
    }
    t.gpu_count = *r.gpu_count;
  } else {
    for (int g : *r.gpus) {
      if (g >= gpus) {
        return InvalidArgument("gpus: machine " + r.machine_id + " has no GPU " +
                               std::to_string(g) + " (it has " + std::to_string(gpus) + ")");
      }
    }
    t.gpus_requested = *r.gpus;
    t.gpu_count = static_cast<int>(r.gpus->size());
  }
  t.user_id = caller.user_id;
  t.account = caller.account;
  t.machine_id = r.machine_id;
  t.container_id = container->id;
  t.containername = r.containername;
  t.command = r.command;
  t.duration = r.duration;
  t.status = "queued";
  t.submit_time = clock_.Now();
  return t;
}

boost::asio::awaitable<Result<Submitted>> TaskService::Submit(const accounts::Principal& caller,
                                                              const TaskRequest& request) {
  auto prepared = Prepare(caller, request);
  if (!prepared.ok()) co_return prepared.error();
  auto created = co_await inserts_.Insert(std::move(prepared).value());
  if (!created.ok()) co_return created.error();
  co_return Admit(std::move(created).value());
}

Result<Submitted> TaskService::Admit(store::Task t) {
  std::lock_guard lock(mu_);
  // Once stored, the task is listed and may have been cancelled since.
  if (auto stored = store_.GetTask(t.id); !stored.ok() || stored->status != "queued") {
    if (!stored.ok()) return stored.error();
    return Submitted{std::move(stored).value(), std::nullopt};
  }
  Machine& m = MachineLocked(t.machine_id);
  if (auto s = m.queue.Enqueue(SchedTask(t)); !s.ok()) {
    spdlog::error("task {}: the scheduler refused it: {}", t.id, s.error().message);
  }
  link_.SendToUser(t.user_id, TaskJsonLocked(t));
  ScheduleLocked(t.machine_id, m);
  auto now = store_.GetTask(t.id);
  if (!now.ok()) return now.error();
  Submitted out{std::move(now).value(), std::nullopt};
  if (out.task.status == "queued") out.estimated_start = m.queue.EstimatedStart(t.id, clock_.Now());
  return out;
}

void TaskService::ScheduleLocked(const std::string& machine_id, Machine& m) {
  if (!m.online) return;
  for (const auto& p : m.queue.Schedule(clock_.Now())) {
    auto t = store_.GetTask(p.id);
    if (!t.ok()) {
      spdlog::error("task {}: cannot start it: {}", p.id, t.error().message);
      continue;
    }
    t->status = "running";
    t->gpu_ids = p.gpus;
    t->start_time = p.start;
    SaveLocked(*t);
    SendStartLocked(*t);
    spdlog::info("task {} of {} starts on {} GPUs {}", t->id, t->account, machine_id,
                 json(p.gpus).dump());
  }
}

void TaskService::SendStartLocked(const store::Task& t) {
  auto container = store_.GetContainer(t.container_id);
  proto::TaskStart start;
  start.task_id = t.id;
  start.container = container.ok() ? proto::RuntimeName(container->account, container->name)
                                   : proto::RuntimeName(t.account, t.containername);
  start.command = t.command;
  start.gpus = t.gpu_ids;
  start.deadline_ms = ToMs(*t.start_time + t.duration);
  start.kill_grace_ms = options_.kill_grace.count();
  link_.SendToAgent(t.machine_id, "task_start", proto::ToJson(start));
}

void TaskService::SaveLocked(const store::Task& t) {
  if (auto s = store_.UpdateTask(t); !s.ok()) {
    spdlog::error("task {}: cannot store its state: {}", t.id, s.error().message);
  }
  link_.SendToUser(t.user_id, TaskJsonLocked(t));
  if (t.status != "queued" || t.released) NotifyHoldersLocked(t.machine_id);
}

Result<store::Task> TaskService::Cancel(const accounts::Principal& caller,
                                        const CancelRequest& request) {
  std::lock_guard lock(mu_);
  auto found = store_.GetTask(request.task_id);
  if (!found.ok() || found->machine_id != request.machine_id) return NotFound("Task not found");
  store::Task t = std::move(found).value();
  if (!caller.IsAdmin() && caller.user_id != t.user_id) return PermissionDenied();
  if (IsFinal(t.status)) return Conflict("Task already finished");
  Machine& m = MachineLocked(t.machine_id);
  const bool was_queued = t.status == "queued";
  t.status = "cancelled";
  t.end_time = clock_.Now();
  if (was_queued) {
    m.queue.Cancel(t.id);
    t.released = true;
    SaveLocked(t);
    ScheduleLocked(t.machine_id, m);  // those behind it may start now
    return t;
  }
  m.queue.Finish(t.id, *t.end_time);
  SaveLocked(t);
  link_.SendToAgent(t.machine_id, "task_stop", json{{"task_id", t.id}});
  return t;
}

void TaskService::ApplyReportLocked(Machine& m, store::Task t, const proto::TaskReport& r) {
  bool changed = false;
  if (t.status == "running" && r.status != "running") {
    t.status = r.status;
    t.exit_code = r.exit_code;
    t.end_time = r.end_ms > 0 ? FromMs(r.end_ms) : clock_.Now();
    m.queue.Finish(t.id, *t.end_time);
    changed = true;
  } else if (IsFinal(t.status) && r.status != "running" && !t.exit_code && r.exit_code &&
             t.status != "queued") {
    t.exit_code = r.exit_code;  // e.g. a cancelled lease's exit status
    changed = true;
  }
  if (IsFinal(t.status) && r.status == "running") {
    // Ended here (cancelled, or lost while the machine was away): stop it there too.
    link_.SendToAgent(t.machine_id, "task_stop", json{{"task_id", t.id}});
  }
  if (r.released && !t.released && t.status != "queued") {
    if (!IsFinal(t.status)) {  // gone without an end report: it ended
      t.status = r.exit_code && *r.exit_code == 0 ? "completed" : "failed";
      t.exit_code = r.exit_code;
      t.end_time = clock_.Now();
    }
    t.released = true;
    m.queue.Release(t.id);
    changed = true;
  }
  if (changed) SaveLocked(t);
  if (t.released && IsFinal(t.status)) {
    link_.SendToAgent(t.machine_id, "task_forget", json{{"task_id", t.id}});
  }
}

void TaskService::OnReport(const std::string& machine_id, const proto::TaskReport& report) {
  std::lock_guard lock(mu_);
  auto t = store_.GetTask(report.task_id);
  if (!t.ok() || t->machine_id != machine_id) {
    // Not ours (or removed with its machine): let the agent drop it.
    link_.SendToAgent(machine_id, "task_stop", json{{"task_id", report.task_id}});
    link_.SendToAgent(machine_id, "task_forget", json{{"task_id", report.task_id}});
    return;
  }
  Machine& m = MachineLocked(machine_id);
  ApplyReportLocked(m, std::move(t).value(), report);
  ScheduleLocked(machine_id, m);
}

void TaskService::OnTasksReport(const std::string& machine_id,
                                const std::vector<proto::TaskReport>& list) {
  std::lock_guard lock(mu_);
  Machine& m = MachineLocked(machine_id);
  std::map<int64_t, const proto::TaskReport*> known;
  for (const auto& r : list) known[r.task_id] = &r;
  for (const auto& r : list) {
    auto t = store_.GetTask(r.task_id);
    if (!t.ok() || t->machine_id != machine_id) {
      link_.SendToAgent(machine_id, "task_stop", json{{"task_id", r.task_id}});
      link_.SendToAgent(machine_id, "task_forget", json{{"task_id", r.task_id}});
      continue;
    }
    ApplyReportLocked(m, std::move(t).value(), r);
  }
  // Leases the agent does not know: resend those whose time lasts; the others
  // never ran there (or are long over), so nothing of them holds the GPUs.
  store::TaskFilter filter;
  filter.machine_id = machine_id;
  filter.unreleased_only = true;
  auto mine = store_.ListTasks(filter);
  if (mine.ok()) {
    const TimePoint now = clock_.Now();
    for (auto& t : *mine) {
      if (t.status == "queued" || known.contains(t.id)) continue;
      if (t.status == "running" && t.start_time && *t.start_time + t.duration > now) {
        SendStartLocked(t);
        continue;
      }
      if (t.status == "running") {
        t.status = "lost";
        t.end_time = now;
        m.queue.Finish(t.id, now);
      }
      t.released = true;
      m.queue.Release(t.id);
      SaveLocked(t);
    }
  }
  ScheduleLocked(machine_id, m);
}

void TaskService::OnOutput(const std::string& machine_id, const proto::TaskOutput& output) {
  if (options_.log_dir.empty() || output.data.empty()) return;
  std::lock_guard lock(mu_);
  auto t = store_.GetTask(output.task_id);
  if (!t.ok() || t->machine_id != machine_id) return;
  const std::string path = LogPath(options_.log_dir, output.task_id);
  {
    std::ofstream out(path, std::ios::app | std::ios::binary);
    out << output.data;
  }
  std::error_code ec;
  auto size = std::filesystem::file_size(path, ec);
  if (ec || size <= 2 * kLogKeep) return;
  auto text = ReadFile(path, size);
  if (text.ok()) (void)WriteFileAtomic(path, text->substr(text->size() - kLogKeep), 0644);
}

Result<std::string> TaskService::Log(const accounts::Principal& caller, int64_t task_id) {
  auto t = store_.GetTask(task_id);
  if (!t.ok()) return t.error();
  if (!caller.IsAdmin() && caller.user_id != t->user_id) return PermissionDenied();
  std::lock_guard lock(mu_);
  const std::string path = LogPath(options_.log_dir, task_id);
  std::error_code ec;
  auto size = std::filesystem::file_size(path, ec);
  if (ec) return std::string();
  auto text = ReadFile(path, size);
  if (!text.ok()) return text.error();
  if (text->size() > kLogKeep) return text->substr(text->size() - kLogKeep);
  return std::move(text).value();
}

Result<std::vector<store::Task>> TaskService::ListForUser(const std::string& account, bool all) {
  auto users = store_.ListUsers();
  if (!users.ok()) return users.error();
  auto user = std::find_if(users->begin(), users->end(),
                           [&](const store::User& u) { return u.account == account; });
  store::TaskFilter filter;
  if (user == users->end()) return std::vector<store::Task>{};
  filter.user_id = user->id;
  if (!all) filter.active_or_ended_since = clock_.Now() - kListWindow;
  return store_.ListTasks(filter);
}

Result<std::vector<store::Task>> TaskService::ListForMachine(const std::string& machine_id,
                                                             bool all) {
  store::TaskFilter filter;
  filter.machine_id = machine_id;
  if (!all) filter.active_or_ended_since = clock_.Now() - kListWindow;
  return store_.ListTasks(filter);
}

std::optional<TimePoint> TaskService::EstimatedStart(const store::Task& task) {
  if (task.status != "queued") return std::nullopt;
  std::lock_guard lock(mu_);
  return MachineLocked(task.machine_id).queue.EstimatedStart(task.id, clock_.Now());
}

void TaskService::OnHoldersChanged(HoldersListener listener) {
  std::lock_guard lock(mu_);
  holders_listener_ = std::move(listener);
  for (const auto& [id, m] : machines_) NotifyHoldersLocked(id);  // the restored leases
}

void TaskService::NotifyHoldersLocked(const std::string& machine_id) {
  if (!holders_listener_) return;
  store::TaskFilter filter;
  filter.machine_id = machine_id;
  filter.unreleased_only = true;
  GpuHolders out;
  auto list = store_.ListTasks(filter);
  if (!list.ok()) return;
  for (const auto& t : *list) {
    if (t.status == "queued") continue;
    for (int g : t.gpu_ids) out[g] = {t.id, t.account};
  }
  holders_listener_(machine_id, out);
}

void TaskService::Sweep() {
  std::lock_guard lock(mu_);
  const TimePoint now = clock_.Now();
  for (auto& [id, m] : machines_) {
    if (m->online || now - m->offline_since < options_.lost_grace || m->queue.running() == 0) {
      continue;
    }
    store::TaskFilter filter;
    filter.machine_id = id;
    filter.unreleased_only = true;
    auto list = store_.ListTasks(filter);
    if (!list.ok()) continue;
    for (auto& t : *list) {
      if (t.status != "running") continue;
      spdlog::warn("task {} on {} is lost: the machine has been offline since {}", t.id, id,
                   FormatIso8601(m->offline_since));
      t.status = "lost";
      t.end_time = now;
      m->queue.Finish(t.id, now);
      SaveLocked(t);
    }
  }
}

json TaskService::TaskJson(const store::Task& t) {
  std::lock_guard lock(mu_);
  return TaskJsonLocked(t);
}

json TaskService::TaskJsonLocked(const store::Task& t) {
  std::optional<TimePoint> estimate;
  if (t.status == "queued") {
    estimate = MachineLocked(t.machine_id).queue.EstimatedStart(t.id, clock_.Now());
  }
  return {{"taskId", t.id},
          {"user_id", t.user_id},
          {"account", t.account},
          {"machine_id", t.machine_id},
          {"containername", t.containername},
          {"command", t.command},
          {"duration", std::chrono::duration<double>(t.duration).count() / 3600.0},
          {"gpu_count", t.gpu_count},
          {"gpu_ids", t.gpu_ids},
          {"status", t.status},
          {"submit_time", FormatIso8601(t.submit_time)},
          {"start_time", TimeOrNull(t.start_time)},
          {"end_time", TimeOrNull(t.end_time)},
          {"exit_code", t.exit_code ? json(*t.exit_code) : json(nullptr)},
          {"estimated_start", TimeOrNull(estimate)}};
}

}  // namespace gpuhub::tasks
