#include "sched/scheduler.hpp"

#include <algorithm>
#include <bit>
#include <cassert>

namespace gpuhub::sched {

using detail::Duration;
using detail::kNever;
using detail::SaturatingAdd;

namespace {

// InvalidArgument unless `gpus` lists distinct non-negative indices.
Status CheckGpuList(const std::vector<int>& gpus) {
  std::vector<int> sorted = gpus;
  std::sort(sorted.begin(), sorted.end());
  if (!sorted.empty() && sorted.front() < 0) return InvalidArgument("GPU indices must be >= 0");
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
    return InvalidArgument("GPU indices must be distinct");
  }
  return Status::Ok();
}

}  // namespace

// ---- Histogram

void MachineQueue::Histogram::Add(const Task& t, int delta) {
  const int row = static_cast<int>(std::bit_width(static_cast<unsigned>(t.gpu_count)));
  const int col = detail::LengthClass(t.duration);
  int32_t& c = counts_[row][col];
  c += delta;
  assert(c >= 0);
  if (c > 0) {
    nonzero_[row].Add(col);
  } else {
    nonzero_[row].Remove(col);
  }
}

bool MachineQueue::Histogram::AnyFits(int gpus, Duration d) const {
  // Row r holds counts in [2^(r-1), 2^r); a task fits only if its count is
  // <= gpus and its duration (so its length class) <= d.
  const int rows =
      std::min(static_cast<int>(std::bit_width(static_cast<unsigned>(gpus))), kRows - 1);
  const int upto = d == Duration::max() ? detail::kLengthClasses - 1 : detail::LengthClass(d);
  for (int r = 1; r <= rows; ++r) {
    if (nonzero_[r].AnyUpTo(upto)) return true;
  }
  return false;
}

// ---- MachineQueue

MachineQueue::MachineQueue(int gpu_count, std::chrono::milliseconds drain_estimate)
    : gpu_count_(std::max(gpu_count, 0)),
      drain_estimate_(std::max(drain_estimate, std::chrono::milliseconds(0))),
      taken_(gpu_count_, 0),
      free_(gpu_count_) {}

void MachineQueue::SetGpuCount(int n) {
  n = std::max(n, 0);
  if (n == gpu_count_) return;
  gpu_count_ = n;
  if (taken_.size() < static_cast<size_t>(n)) taken_.resize(n, 0);
  free_ = static_cast<int>(std::count(taken_.begin(), taken_.begin() + n, 0));
  Invalidate();
}

Status MachineQueue::Enqueue(const Task& t) {
  if (t.gpu_count < 1) return InvalidArgument("gpu_count must be at least 1");
  if (!t.gpus.empty()) {
    if (static_cast<size_t>(t.gpu_count) != t.gpus.size()) {
      return InvalidArgument("gpu_count must equal the number of GPUs named");
    }
    if (Status s = CheckGpuList(t.gpus); !s.ok()) return s;
  }
  if (t.duration <= std::chrono::milliseconds(0) || t.duration > kMaxDuration) {
    return InvalidArgument("duration must be positive and at most 10 years");
  }
  if (queued_.contains(t.id) || leases_.contains(t.id)) return Conflict("task id already known");

  const Key key{t.submit_time, t.id};
  const auto it = queue_.emplace(key, Entry{t, std::nullopt, {}}).first;
  queued_.emplace(t.id, key);
  all_.Add(t, +1);
  if (plan_valid_) {
    // Unplanned tasks form a suffix of the queue; a task landing before a
    // planned one changes that one's reservation.
    const auto after = std::next(Queue::const_iterator(it));
    if (after == next_ || (next_ != queue_.end() && next_->first < key)) {
      if (after == next_) next_ = it;
      unplanned_.Add(t, +1);
    } else {
      Invalidate();
    }
  }
  return Status::Ok();
}

bool MachineQueue::Cancel(int64_t id) {
  const auto q = queued_.find(id);
  if (q == queued_.end()) return false;
  const auto it = queue_.find(q->second);
  assert(it != queue_.end());
  if (plan_valid_) {
    if (Planned(it)) {
      Invalidate();  // the tasks behind it may move up
    } else {
      if (Queue::const_iterator(it) == next_) ++next_;
      unplanned_.Add(it->second.task, -1);
    }
  }
  all_.Add(it->second.task, -1);
  queue_.erase(it);
  queued_.erase(q);
  return true;
}

Status MachineQueue::Restore(int64_t id, std::vector<int> gpus, TimePoint end) {
  if (gpus.empty()) return InvalidArgument("a lease needs GPUs");
  if (Status s = CheckGpuList(gpus); !s.ok()) return s;
  if (queued_.contains(id) || leases_.contains(id)) return Conflict("task id already known");
  for (int g : gpus) {
    if (Taken(g)) return Conflict("GPU " + std::to_string(g) + " is in another lease");
  }
  TakeGpus(id, gpus);
  leases_.emplace(id, Lease{std::move(gpus), end, false, {}});
  Invalidate();
  return Status::Ok();
}

bool MachineQueue::Finish(int64_t id, TimePoint now) {
  const auto it = leases_.find(id);
  if (it == leases_.end() || it->second.draining) return false;
  it->second.draining = true;
  it->second.finished_at = now;
  Invalidate();
  return true;
}

bool MachineQueue::Release(int64_t id) {
  const auto it = leases_.find(id);
  if (it == leases_.end()) return false;
  FreeGpus(it->second.gpus);
  leases_.erase(it);
  Invalidate();
  return true;
}

void MachineQueue::TakeGpus(int64_t /*id*/, const std::vector<int>& gpus) {
  for (int g : gpus) {
    if (static_cast<size_t>(g) >= taken_.size()) taken_.resize(g + 1, 0);
    assert(!taken_[g]);
    taken_[g] = 1;
    if (g < gpu_count_) --free_;
  }
}

void MachineQueue::FreeGpus(const std::vector<int>& gpus) {
  for (int g : gpus) {
    assert(Taken(g));
    taken_[g] = 0;
    if (g < gpu_count_) ++free_;
  }
}

TimePoint MachineQueue::Availability(const Lease& l, TimePoint now) const {
  return std::max(l.draining ? SaturatingAdd(l.finished_at, drain_estimate_) : l.end, now);
}

std::vector<Placement> MachineQueue::Schedule(TimePoint now) {
  if (free_ == 0 || queue_.empty()) return {};
  EnsurePlan(now);
  while (next_ != queue_.end() && !NothingMoreStartsNow()) PlanNext();

  std::vector<Placement> started;
  auto kept = due_.begin();
  for (const auto it : due_) {
    const Entry& e = it->second;
    if (std::any_of(e.gpus.begin(), e.gpus.end(), [&](int g) { return Taken(g); })) {
      *kept++ = it;  // waits for a lease that counts as over but still holds a GPU
      continue;
    }
    const TimePoint end = SaturatingAdd(now, e.task.duration);
    started.push_back({e.task.id, e.gpus, now, end});
    TakeGpus(e.task.id, e.gpus);
    for (int g : e.gpus) profile_.Hold(g);
    leases_.emplace(e.task.id, Lease{e.gpus, end, false, {}});
    all_.Add(e.task, -1);
    queued_.erase(e.task.id);
    queue_.erase(it);
  }
  due_.erase(kept, due_.end());
  // The plan stays valid: the started tasks hold exactly what they had reserved.
  return started;
}

std::optional<TimePoint> MachineQueue::EstimatedStart(int64_t id, TimePoint now) const {
  const auto q = queued_.find(id);
  if (q == queued_.end()) return std::nullopt;
  const auto it = queue_.find(q->second);
  EnsurePlan(now);
  while (!Planned(it)) PlanNext();
  return it->second.start;
}

std::vector<std::pair<int64_t, std::optional<TimePoint>>> MachineQueue::Estimates(
    TimePoint now) const {
  std::vector<std::pair<int64_t, std::optional<TimePoint>>> out;
  if (queue_.empty()) return out;
  EnsurePlan(now);
  while (next_ != queue_.end()) PlanNext();
  out.reserve(queue_.size());
  for (const auto& [key, e] : queue_) out.emplace_back(key.second, e.start);
  return out;
}

TaskState MachineQueue::state(int64_t id) const {
  if (queued_.contains(id)) return TaskState::kQueued;
  const auto it = leases_.find(id);
  if (it == leases_.end()) return TaskState::kUnknown;
  return it->second.draining ? TaskState::kDraining : TaskState::kRunning;
}

// ---- The plan

bool MachineQueue::Planned(Queue::const_iterator it) const {
  return plan_valid_ && (next_ == queue_.end() || it->first < next_->first);
}

void MachineQueue::EnsurePlan(TimePoint now) const {
  if (plan_valid_ && now == plan_now_) return;
  if (plan_valid_ && now > plan_now_ && due_.empty() && next_start_ > now) {
    // Nothing planned starts before `now`: every reservation is still the
    // earliest, and the availability at times >= now has not changed.
    plan_now_ = now;
    profile_.Reanchor(now);
    return;
  }
  plan_valid_ = true;
  plan_now_ = now;
  next_ = queue_.begin();
  due_.clear();
  next_start_ = kNever;
  unplanned_ = all_;
  std::vector<TimePoint> base(gpu_count_, now);
  std::vector<char> held(gpu_count_, 0);
  for (const auto& [id, lease] : leases_) {
    const TimePoint a = Availability(lease, now);
    for (int g : lease.gpus) {
      if (g >= gpu_count_) continue;
      base[g] = a;
      held[g] = 1;
    }
  }
  profile_.Reset(now, base, held);
}

void MachineQueue::PlanNext() const {
  assert(plan_valid_ && next_ != queue_.end());
  const Entry& e = next_->second;
  const Task& t = e.task;
  if (t.gpus.empty()) {
    e.start = t.gpu_count <= gpu_count_
                  ? std::optional(profile_.PlaceCount(t.gpu_count, t.duration, &e.gpus))
                  : std::nullopt;
  } else if (std::all_of(t.gpus.begin(), t.gpus.end(), [&](int g) { return g < gpu_count_; })) {
    e.start = profile_.PlaceGpus(t.gpus, t.duration);
    e.gpus = t.gpus;
  } else {
    e.start = std::nullopt;
  }
  if (!e.start) {
    e.gpus.clear();
  } else if (*e.start == plan_now_) {
    due_.push_back(next_);
  } else {
    next_start_ = std::min(next_start_, *e.start);
  }
  unplanned_.Add(t, -1);
  ++next_;
}

bool MachineQueue::NothingMoreStartsNow() const {
  // A task starts now only on GPUs in no lease whose time at now no one ahead
  // of it has reserved: at most free_open() of them, for at most the longest
  // such stretch. Planning more only takes more of that time.
  const int open = profile_.free_open();
  return open == 0 || !unplanned_.AnyFits(open, profile_.MaxOpenWindow());
}

}  // namespace gpuhub::sched
