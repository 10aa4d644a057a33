#include "sched/scheduler.hpp"

#include <algorithm>
#include <bit>
#include <cassert>
#include <limits>
#include <string>

namespace gpuhub::sched {

using detail::Duration;
using detail::kNever;
using detail::SaturatingAdd;

namespace {

// InvalidArgument unless `gpus` lists distinct indices in [0, kMaxGpus).
Status CheckGpuList(const std::vector<int>& gpus) {
  std::vector<int> sorted = gpus;
  std::sort(sorted.begin(), sorted.end());
  if (!sorted.empty() && (sorted.front() < 0 || sorted.back() >= kMaxGpus)) {
    return InvalidArgument("GPU indices must be >= 0 and < " + std::to_string(kMaxGpus));
  }
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end()) {
    return InvalidArgument("GPU indices must be distinct");
  }
  return Status::Ok();
}

}  // namespace

// ---- Histogram

MachineQueue::Histogram::Histogram(const Histogram& other)
    : table_(other.table_ ? std::make_unique<Table>(*other.table_) : nullptr) {}

MachineQueue::Histogram& MachineQueue::Histogram::operator=(const Histogram& other) {
  if (this == &other) return *this;
  if (!other.table_) {
    table_.reset();
  } else if (table_) {
    *table_ = *other.table_;
  } else {
    table_ = std::make_unique<Table>(*other.table_);
  }
  return *this;
}

void MachineQueue::Histogram::Add(const Task& t, int delta) {
  if (!table_) table_ = std::make_unique<Table>();
  const int row = static_cast<int>(std::bit_width(static_cast<unsigned>(t.gpu_count)));
  const int col = detail::LengthClass(t.duration);
  int32_t& c = table_->counts[row][col];
  c += delta;
  assert(c >= 0);
  if (c > 0) {
    table_->nonzero[row].Add(col);
  } else {
    table_->nonzero[row].Remove(col);
  }
}

bool MachineQueue::Histogram::AnyFits(int gpus, Duration d) const {
  if (!table_) return false;
  // Row r holds counts in [2^(r-1), 2^r); a task fits only if its count is
  // <= gpus and its duration (so its length class) <= d.
  const int rows =
      std::min(static_cast<int>(std::bit_width(static_cast<unsigned>(gpus))), kRows - 1);
  const int upto = d == Duration::max() ? detail::kLengthClasses - 1 : detail::LengthClass(d);
  for (int r = 1; r <= rows; ++r) {
    if (table_->nonzero[r].AnyUpTo(upto)) return true;
  }
  return false;
}

// ---- ByLength

void MachineQueue::ByLength::Add(Queue::const_iterator it) {
  index_.emplace(std::pair(detail::LengthClass(it->second.task.duration), it->first), it);
}

void MachineQueue::ByLength::Remove(Queue::const_iterator it) {
  index_.erase(std::pair(detail::LengthClass(it->second.task.duration), it->first));
}

void MachineQueue::ByLength::StartWalk(const Key& after, int max_class) {
  cursors_.clear();
  constexpr Key kFirst{TimePoint::min(), std::numeric_limits<int64_t>::min()};
  for (auto c = index_.begin(); c != index_.end() && c->first.first <= max_class;
       c = index_.lower_bound({c->first.first + 1, kFirst})) {
    const auto first = index_.upper_bound({c->first.first, after});
    if (first != index_.end() && first->first.first == c->first.first) cursors_.push_back(first);
  }
  std::make_heap(cursors_.begin(), cursors_.end(), Later);
}

std::optional<MachineQueue::Queue::const_iterator> MachineQueue::ByLength::Next(const Key& after,
                                                                                int max_class) {
  while (!cursors_.empty()) {
    const auto c = cursors_.front();
    if (c->first.first <= max_class && c->first.second > after) return c->second;
    std::pop_heap(cursors_.begin(), cursors_.end(), Later);
    cursors_.pop_back();
    if (c->first.first > max_class) continue;  // the class is too long from now on
    auto next = std::next(c);                  // usually the one
    if (next != index_.end() && next->first.first == c->first.first &&
        next->first.second <= after) {
      next = index_.upper_bound({c->first.first, after});
    }
    if (next != index_.end() && next->first.first == c->first.first) {
      cursors_.push_back(next);
      std::push_heap(cursors_.begin(), cursors_.end(), Later);
    }
  }
  return std::nullopt;
}

// ---- MachineQueue

MachineQueue::MachineQueue(int gpu_count, std::chrono::milliseconds drain_estimate)
    : gpu_count_(std::clamp(gpu_count, 0, kMaxGpus)),
      drain_estimate_(std::max(drain_estimate, std::chrono::milliseconds(0))),
      taken_(gpu_count_, 0),
      free_(gpu_count_) {}

// The plan holds iterators into queue_; a moved queue plans again.
MachineQueue::MachineQueue(MachineQueue&& other) noexcept
    : gpu_count_(other.gpu_count_),
      drain_estimate_(other.drain_estimate_),
      queue_(std::move(other.queue_)),
      queued_(std::move(other.queued_)),
      leases_(std::move(other.leases_)),
      taken_(std::move(other.taken_)),
      free_(other.free_),
      all_(std::move(other.all_)),
      by_length_(std::move(other.by_length_)) {
  other.plan_valid_ = false;
}

MachineQueue& MachineQueue::operator=(MachineQueue&& other) noexcept {
  if (this != &other) {
    gpu_count_ = other.gpu_count_;
    drain_estimate_ = other.drain_estimate_;
    queue_ = std::move(other.queue_);
    queued_ = std::move(other.queued_);
    leases_ = std::move(other.leases_);
    taken_ = std::move(other.taken_);
    free_ = other.free_;
    all_ = std::move(other.all_);
    by_length_ = std::move(other.by_length_);
    plan_valid_ = false;
    due_.clear();
    other.plan_valid_ = false;
  }
  return *this;
}

void MachineQueue::SetGpuCount(int n) {
  n = std::clamp(n, 0, kMaxGpus);
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
  by_length_.Add(it);
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
  by_length_.Remove(it);
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
  TakeGpus(gpus);
  leases_.emplace(id, Lease{std::move(gpus), end, false, {}});
  Invalidate();
  return Status::Ok();
}

bool MachineQueue::Finish(int64_t id, TimePoint now) {
  const auto it = leases_.find(id);
  if (it == leases_.end() || it->second.draining) return false;
  it->second.draining = true;
  it->second.finished_at = std::min(now, it->second.end);
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

void MachineQueue::TakeGpus(const std::vector<int>& gpus) {
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
  const TimePoint t = l.draining ? SaturatingAdd(l.finished_at, drain_estimate_) : l.end;
  if (t > now) return t;
  // Overdue: the next whole second, so the plan need not move with every
  // `now` while the agent has not reported.
  const auto s = std::chrono::floor<std::chrono::seconds>(now.time_since_epoch());
  return SaturatingAdd(TimePoint(s), std::chrono::seconds(1));
}

std::vector<Placement> MachineQueue::Schedule(TimePoint now) {
  if (free_ == 0 || queue_.empty()) return {};
  EnsurePlan(now);

  // Walk the unplanned tasks while one could still start now (a histogram of
  // them by width and length says whether any fits the free GPUs' time at
  // now). A task starts only in the free stretches at now, and a task can
  // take time in a stretch only if it is no longer than the stretch
  // (profile.hpp, FitAtNow). So a task too long for every stretch is passed
  // over unplanned: nothing behind it depends on its plan in those stretches.
  // A task that fits in them now starts, even ahead of such tasks, on the GPUs
  // its plan would give it. A task that might land in them later ("maybe")
  // needs its exact reservation. A placement without the tasks passed over
  // is a lower bound for it: if even that comes after the stretches, it is
  // passed over too. If not, the exact reservation normally means planning
  // every task up to it. But say W is the end of the stretches, no GPU's
  // tail starts before W, and the free runs that cross W (holes) are all
  // shorter than every task passed over; then no task passed over takes any
  // part of a free run that starts before W, so those runs are exact, and a
  // placement that starts before W (it lies in such runs) is the task's
  // reservation. From then on the walk reserves ahead, out of queue order,
  // each task that lands before W, and passes over those that cannot touch
  // those runs (too long for all of them, or landing after W and too long
  // for the holes that cross it), with no planning from the head; the plan
  // is dropped at the end. A task it cannot decide so (after W, but short
  // enough for a hole across W) sends it back to planning from the head,
  // without reserving ahead again.
  using AtNow = detail::Profile::AtNow;
  enum class Step { kPlanUpTo, kPass, kStart, kReserveAhead };
  std::vector<std::pair<Key, Placement>> started;
  std::vector<int> chosen;
  // A task passed over that might land before the stretches end (so before
  // any wall): no wall helps then.
  bool passed_early = false;
  Duration shortest_passed = Duration::max();  // of the tasks passed over, seen
  TimePoint not_walled = kNever;               // a time checked for a wall and found crossed
  TimePoint wall = kNever;                     // < kNever: reserving ahead up to it
  Duration crossing{};                         // with a wall: the longest free run across it
  Duration longest_run{};  // with a wall: the longest free run starting before it
  bool no_wall = false;    // reserving ahead failed: plan from the head
  bool walking = false;    // by_length_ has started a walk
  bool restarted = false;  // the walk started again at a wall
  // A wall at `w` for the tasks passed over so far: the crossing runs.
  auto wall_at = [&](TimePoint w) {
    if (w == kNever || w == not_walled || no_wall) return std::optional<Duration>();
    const Duration c = profile_.Crossing(w);
    if (c > w - now || c >= shortest_passed) {
      not_walled = w;
      return std::optional<Duration>();
    }
    return std::optional(c);
  };
  for (auto it = next_; it != queue_.end() && profile_.free_open() > 0;) {
    const Histogram& rest = it == next_ ? unplanned_ : ahead_;
    if (!rest.AnyFits(profile_.free_open(), profile_.MaxOpenWindow())) break;
    const Task& t = it->second.task;
    const bool placeable =
        t.gpu_count <= gpu_count_ &&
        std::all_of(t.gpus.begin(), t.gpus.end(), [&](int g) { return g < gpu_count_; });
    const AtNow fit =
        placeable ? profile_.FitAtNow(t.gpu_count, t.gpus, t.duration, &chosen) : AtNow::kTooLong;
    Step step = Step::kPass;
    if (!placeable) {
      step = Step::kPass;  // it lands nowhere
    } else if (fit == AtNow::kFits) {
      step = it == next_ ? Step::kPlanUpTo : Step::kStart;
    } else if (wall != kNever) {
      if (t.duration > longest_run) {
        step = Step::kPass;
      } else if (profile_.Probe(t.gpu_count, t.gpus, t.duration) < wall) {
        step = Step::kReserveAhead;
      } else if (t.duration > crossing) {
        step = Step::kPass;
      } else {
        // Undecided: start over, planning from the head up to it.
        Invalidate();
        EnsurePlan(now);
        wall = kNever;
        no_wall = true;
        walking = false;
        step = Step::kPlanUpTo;
      }
    } else if (fit == AtNow::kTooLong && t.duration > profile_.MaxOpenWindow()) {
      step = Step::kPass;  // no free run before the stretches end is long enough
    } else if (it == next_) {
      step = Step::kPlanUpTo;
    } else if (const TimePoint open_until = profile_.OpenUntil();
               profile_.Probe(t.gpu_count, t.gpus, t.duration) >= open_until) {
      step = Step::kPass;  // it lands at or after open_until, whatever the rest does
    } else if (const auto c = passed_early ? std::nullopt : wall_at(open_until)) {
      wall = open_until;
      crossing = *c;
      step = Step::kReserveAhead;
    } else {
      passed_early = passed_early || fit == AtNow::kTooLong;
      step = fit == AtNow::kTooLong ? Step::kPass : Step::kPlanUpTo;
    }
    if (step == Step::kPass && placeable && wall == kNever) {
      shortest_passed = std::min<Duration>(shortest_passed, t.duration);
    }

    if (step == Step::kPlanUpTo) {
      // Plan exactly, up to and including it; what starts now lands in due_.
      // Behind tasks passed over, stop as soon as that walls off the
      // stretches (each task passed over that lands before their end takes
      // a free run that crosses it), and walk again from the first unplanned
      // task: with the wall, the walk can reserve ahead.
      const bool behind = it != next_ && !no_wall && !restarted;
      const TimePoint open_until = profile_.OpenUntil();
      while (next_ != std::next(it)) {
        PlanNext();
        if (behind && next_ != std::next(it) && profile_.MinTail() >= open_until) {
          // Nothing is passed over any more: a wall for none.
          passed_early = false;
          shortest_passed = Duration::max();
          not_walled = kNever;
          if (wall_at(open_until)) {
            walking = false;
            restarted = true;  // once: the walk may well stop at the same task again
            break;
          }
        }
      }
      it = next_;
      continue;
    }
    if (it == next_) ahead_ = unplanned_;  // the first task passed over
    ahead_.Add(t, -1);
    if (step == Step::kReserveAhead) {
      // Its exact reservation, not yet now (it did not fit now).
      if (t.gpus.empty()) {
        profile_.PlaceCount(t.gpu_count, t.duration, &chosen);
      } else {
        profile_.PlaceGpus(t.gpus, t.duration);
      }
    } else if (step == Step::kStart) {
      // Fits now, behind unplanned tasks: take its time in the profile.
      [[maybe_unused]] const TimePoint at = profile_.PlaceGpus(chosen, t.duration);
      assert(at == now);
      unplanned_.Add(t, -1);
    }
    // On to the next task that could matter: one no longer than the
    // stretches or, with a wall, than the longest free run before it (no
    // longer task lands before the wall). Those in between are passed over
    // unseen.
    if (wall != kNever && step != Step::kPass) {
      longest_run = std::max(profile_.LongestRunBefore(wall), crossing);
    }
    const Duration limit = wall != kNever ? longest_run : profile_.MaxOpenWindow();
    const int max_class =
        limit == Duration::max() ? detail::kLengthClasses - 1 : detail::LengthClass(limit);
    if (!walking) by_length_.StartWalk(it->first, max_class);
    walking = true;
    const auto following = by_length_.Next(it->first, max_class).value_or(queue_.end());
    if (step == Step::kStart) {
      started.emplace_back(it->first, Start(it, chosen, now));
      queue_.erase(it);
    }
    it = following;
  }

  // Every GPU in a lease counts as busy beyond now, so what is planned to
  // start now is on free GPUs.
  for (const auto it : due_) {
    started.emplace_back(it->first, Start(it, it->second.gpus, now));
    queue_.erase(it);
  }
  due_.clear();
  // In queue order: some started ahead of tasks that are due.
  std::sort(started.begin(), started.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<Placement> out;
  out.reserve(started.size());
  for (auto& [key, p] : started) out.push_back(std::move(p));
  // The plan stays valid: the started tasks hold exactly what they had
  // reserved. Not so after reserving ahead: the profile holds reservations
  // of tasks that are not planned.
  if (wall != kNever) Invalidate();
  return out;
}

Placement MachineQueue::Start(Queue::const_iterator it, const std::vector<int>& gpus,
                              TimePoint now) {
  const Task& t = it->second.task;
  assert(std::none_of(gpus.begin(), gpus.end(), [&](int g) { return Taken(g); }));
  const TimePoint end = SaturatingAdd(now, t.duration);
  TakeGpus(gpus);
  leases_.emplace(t.id, Lease{gpus, end, false, {}});
  next_lease_end_ = std::min(next_lease_end_, end);
  all_.Add(t, -1);
  by_length_.Remove(it);
  queued_.erase(t.id);
  return {t.id, gpus, now, end};
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
  if (plan_valid_ && now > plan_now_ && due_.empty() && next_start_ > now &&
      next_lease_end_ > now) {
    // Nothing planned starts by `now` and no lease became overdue: every
    // reservation is still the earliest, and the availability at times >= now
    // has not changed.
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
  next_lease_end_ = kNever;
  std::vector<TimePoint> base(gpu_count_, now);
  for (const auto& [id, lease] : leases_) {
    const TimePoint a = Availability(lease, now);
    for (int g : lease.gpus) {
      if (g >= gpu_count_) continue;
      base[g] = a;
      next_lease_end_ = std::min(next_lease_end_, a);
    }
  }
  profile_.Reset(now, base);
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

}  // namespace gpuhub::sched
