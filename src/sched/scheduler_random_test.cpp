// Randomized test of MachineQueue against a slow, obviously correct reference:
// a per-GPU timeline of busy intervals, and for each queued task in order a
// scan of every candidate start time.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "sched/scheduler.hpp"
#include "sched/test_printers.hpp"

namespace gpuhub::sched {
namespace {

using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::seconds;

const TimePoint kT0 = TimePoint{} + hours(24 * 365 * 56);

struct RefLease {
  std::vector<int> gpus;
  TimePoint end;
  bool draining = false;
  TimePoint finished_at;
};

using QueueKey = std::pair<TimePoint, int64_t>;

struct RefReservation {
  std::optional<TimePoint> start;
  std::vector<int> gpus;  // ascending for counts, as named otherwise
};

// The reference plan: per GPU a list of busy intervals [from, to). For each
// task in queue order, try now and every end of a busy interval, in order;
// take the first time at which the task's GPUs are free for its duration.
// With `with_queue` false, each task is planned alone (what the leases alone
// allow: the earliest start that is possible at all).
std::map<int64_t, RefReservation> RefPlan(int gpu_count, TimePoint now, milliseconds drain,
                                          const std::map<int64_t, RefLease>& leases,
                                          const std::map<QueueKey, Task>& queue,
                                          bool with_queue = true) {
  using Interval = std::pair<TimePoint, TimePoint>;
  std::vector<std::vector<Interval>> base(gpu_count);
  for (const auto& [id, l] : leases) {
    // Free at its end (or drain_estimate after it finished); once that has
    // passed, at the next whole second after now.
    TimePoint a = l.draining ? l.finished_at + drain : l.end;
    if (a <= now) a = TimePoint(std::chrono::floor<seconds>(now.time_since_epoch()) + seconds(1));
    for (int g : l.gpus) {
      if (g < gpu_count) base[g].push_back({TimePoint::min(), a});
    }
  }
  auto busy = base;
  std::map<int64_t, RefReservation> plan;
  for (const auto& [key, t] : queue) {
    if (!with_queue) busy = base;
    RefReservation& r = plan[t.id];
    const bool named = !t.gpus.empty();
    if (t.gpu_count > gpu_count ||
        std::any_of(t.gpus.begin(), t.gpus.end(), [&](int g) { return g >= gpu_count; })) {
      continue;
    }
    std::vector<TimePoint> candidates{now};
    for (const auto& intervals : busy) {
      for (const auto& [from, to] : intervals) {
        if (to > now) candidates.push_back(to);
      }
    }
    std::sort(candidates.begin(), candidates.end());
    candidates.erase(std::unique(candidates.begin(), candidates.end()), candidates.end());
    for (TimePoint start : candidates) {
      const TimePoint end = start + t.duration;
      auto free = [&](int g) {
        return std::none_of(busy[g].begin(), busy[g].end(),
                            [&](const Interval& i) { return i.first < end && i.second > start; });
      };
      std::vector<int> chosen;
      if (named) {
        if (!std::all_of(t.gpus.begin(), t.gpus.end(), free)) continue;
        chosen = t.gpus;
      } else {
        for (int g = 0; g < gpu_count; ++g) {
          if (free(g)) chosen.push_back(g);
        }
        if (static_cast<int>(chosen.size()) < t.gpu_count) continue;
        chosen.resize(t.gpu_count);  // the lowest indices
      }
      r.start = start;
      r.gpus = chosen;
      for (int g : chosen) busy[g].push_back({start, end});
      break;
    }
    EXPECT_TRUE(r.start.has_value()) << "the reference found no time for task " << t.id;
  }
  return plan;
}

std::string Str(TimePoint t) {
  return std::to_string(std::chrono::duration_cast<milliseconds>(t - kT0).count()) + "ms";
}
std::string Str(const std::optional<TimePoint>& t) { return t ? Str(*t) : "none"; }

// Drives one MachineQueue and a model of what it should hold through random
// steps, checking both after each.
class Simulation {
 public:
  // `busy`: the queue is kept full, of tasks as wide as in bench/sched_bench
  // (some want every GPU) and lasting 10 s to 12 min (half of them whole
  // tens of seconds), and each step ends a lease, at its end or early:
  // Schedule then often finds the free stretches walled off by a wide
  // reservation at the head, and reserves ahead out of queue order.
  Simulation(uint64_t seed, int max_gpus, size_t max_queue, bool busy = false)
      : rng_(seed),
        max_gpus_(max_gpus),
        max_queue_(max_queue),
        busy_(busy),
        gpu_count_(busy ? max_gpus : Uniform(1, max_gpus)),
        drain_(seconds(Uniform(0, 3) * 10)),
        q_(gpu_count_, drain_) {}

  void Run(int steps) {
    for (step_ = 0; step_ < steps && !::testing::Test::HasFailure(); ++step_) {
      Act();
      if (Chance(0.85)) ScheduleAndCheck();
      Check();
    }
    if (::testing::Test::HasFailure()) {
      std::string all;
      for (const auto& line : log_) all += line + "\n";
      ADD_FAILURE() << "steps (GPUs " << max_gpus_ << ", drain " << drain_.count() << " ms):\n"
                    << all;
    }
  }

 private:
  int Uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }
  bool Chance(double p) { return std::bernoulli_distribution(p)(rng_); }
  template <typename C>
  auto Pick(const C& c) {
    auto it = c.begin();
    std::advance(it, Uniform(0, static_cast<int>(c.size()) - 1));
    return it;
  }
  // Every change to the model is logged, and drops the cached reference plan.
  void Log(std::string line) {
    log_.push_back(std::move(line));
    ref_.reset();
  }
  const std::map<int64_t, RefReservation>& Ref() {
    if (!ref_) ref_ = RefPlan(gpu_count_, now_, drain_, leases_, queue_);
    return *ref_;
  }
  static std::string List(const std::vector<int>& v) {
    std::string s = "[";
    for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
    return s + "]";
  }
  std::string Where() const { return "step " + std::to_string(step_) + " at " + Str(now_); }

  std::set<int> TakenGpus() const {
    std::set<int> taken;
    for (const auto& [id, l] : leases_) taken.insert(l.gpus.begin(), l.gpus.end());
    return taken;
  }

  milliseconds RandomDuration() {
    if (Chance(0.1)) return milliseconds(Uniform(1, 90'000));
    return seconds(10 * Uniform(1, 12));  // many ties
  }

  void Submit() {
    Task t;
    t.id = next_id_++;
    t.submit_time = Chance(0.9) ? now_ : now_ - seconds(Uniform(0, 120));
    t.duration = !busy_        ? RandomDuration()
                 : Chance(0.5) ? seconds(10 * Uniform(1, 72))  // ties
                               : milliseconds(Uniform(10'000, 720'000));
    if (Chance(0.3)) {
      std::set<int> gpus;
      const int n = Uniform(1, std::min(3, max_gpus_));
      while (static_cast<int>(gpus.size()) < n)
        gpus.insert(Uniform(0, max_gpus_ - (busy_ ? 1 : 0)));
      t.gpus.assign(gpus.begin(), gpus.end());
      std::shuffle(t.gpus.begin(), t.gpus.end(), rng_);
      t.gpu_count = n;
    } else if (busy_) {
      const int r = Uniform(0, 99);
      t.gpu_count = r < 55 ? 1 : r < 75 ? 2 : r < 90 ? 4 : std::max(gpu_count_, 1);
    } else {
      t.gpu_count = Chance(0.7) ? 1 : Uniform(1, max_gpus_ + 1);
    }
    Log("enqueue " + std::to_string(t.id) + " submit " + Str(t.submit_time) + " for " +
        std::to_string(t.duration.count()) + " ms, " +
        (t.gpus.empty() ? std::to_string(t.gpu_count) + " GPUs" : "GPUs " + List(t.gpus)));
    ASSERT_TRUE(q_.Enqueue(t).ok()) << Where();
    queue_.emplace(QueueKey{t.submit_time, t.id}, t);
    // Now and then an invalid or conflicting one, which changes nothing.
    if (Chance(0.05)) {
      Task bad = t;
      EXPECT_EQ(q_.Enqueue(bad).error().code, ErrorCode::kConflict) << Where();
      bad.id = next_id_++;
      bad.gpu_count = 0;
      bad.gpus.clear();
      EXPECT_EQ(q_.Enqueue(bad).error().code, ErrorCode::kInvalidArgument) << Where();
    }
  }

  void Act() {
    if (busy_) {
      ActBusy();
      return;
    }
    const int what = Uniform(0, 99);
    if (what < 35) {
      if (queue_.size() < max_queue_) Submit();
    } else if (what < 42) {
      if (queue_.empty() || Chance(0.1)) {
        EXPECT_FALSE(q_.Cancel(next_id_ + 1000)) << Where();
        return;
      }
      const auto it = Pick(queue_);
      Log("cancel " + std::to_string(it->second.id));
      EXPECT_TRUE(q_.Cancel(it->second.id)) << Where();
      gone_.insert(it->second.id);
      queue_.erase(it);
    } else if (what < 50) {  // a command exits before its time is up
      std::vector<int64_t> running;
      for (const auto& [id, l] : leases_) {
        if (!l.draining) running.push_back(id);
      }
      if (running.empty()) return;
      const int64_t id = *Pick(running);
      Log("finish " + std::to_string(id));
      EXPECT_TRUE(q_.Finish(id, now_)) << Where();
      leases_[id].draining = true;
      leases_[id].finished_at = std::min(now_, leases_[id].end);
    } else if (what < 60) {  // the server notices expired leases, some of them
      for (auto& [id, l] : leases_) {
        if (l.draining || l.end > now_ || Chance(0.3)) continue;
        Log("finish expired " + std::to_string(id));
        EXPECT_TRUE(q_.Finish(id, now_)) << Where();
        l.draining = true;
        l.finished_at = std::min(now_, l.end);
      }
    } else if (what < 72) {  // the agent reports processes gone
      std::vector<int64_t> ids;
      for (const auto& [id, l] : leases_) {
        if (l.draining || Chance(0.1)) ids.push_back(id);
      }
      if (ids.empty()) return;
      const int64_t id = *Pick(ids);
      Log("release " + std::to_string(id));
      EXPECT_TRUE(q_.Release(id)) << Where();
      leases_.erase(id);
      gone_.insert(id);
    } else if (what < 90) {
      AdvanceTime();
    } else if (what < 93) {
      gpu_count_ = Uniform(Chance(0.1) ? 0 : 1, max_gpus_);
      Log("gpu count " + std::to_string(gpu_count_));
      q_.SetGpuCount(gpu_count_);
    } else if (what < 96) {  // a lease restored after a restart
      const std::set<int> taken = TakenGpus();
      std::vector<int> gpus;
      for (int g = 0; g <= max_gpus_; ++g) {
        if (!taken.contains(g) && Chance(0.3)) gpus.push_back(g);
      }
      if (gpus.empty()) return;
      const int64_t id = next_id_++;
      const TimePoint end = now_ + seconds(Uniform(-30, 120));
      Log("restore " + std::to_string(id) + " on " + List(gpus) + " until " + Str(end));
      ASSERT_TRUE(q_.Restore(id, gpus, end).ok()) << Where();
      leases_[id] = RefLease{gpus, end, false, {}};
      if (Chance(0.3)) {
        EXPECT_EQ(q_.Restore(next_id_++, {gpus.front()}, end).error().code, ErrorCode::kConflict);
      }
    } else {  // somebody looks at estimates without scheduling
      Log("estimates");
      CheckEstimates(Ref());
    }
  }

  void ActBusy() {
    while (queue_.size() < max_queue_ && !::testing::Test::HasFatalFailure()) Submit();
    std::vector<int64_t> running;
    std::vector<int64_t> draining;
    for (const auto& [id, l] : leases_) (l.draining ? draining : running).push_back(id);
    if (!draining.empty() && Chance(0.5)) {
      const int64_t id = *Pick(draining);
      Log("release " + std::to_string(id));
      EXPECT_TRUE(q_.Release(id)) << Where();
      leases_.erase(id);
      gone_.insert(id);
      return;
    }
    if (running.empty()) return;
    int64_t id = *Pick(running);
    if (Chance(0.6)) {  // the lease that ends first, at its end
      for (int64_t r : running) {
        if (leases_[r].end < leases_[id].end) id = r;
      }
      if (leases_[id].end > now_) now_ = leases_[id].end;
    } else {  // one that ends early
      now_ += milliseconds(Uniform(0, 5'000));
    }
    Log("time " + Str(now_) + ", finish " + std::to_string(id));
    EXPECT_TRUE(q_.Finish(id, now_)) << Where();
    RefLease& l = leases_[id];
    l.draining = true;
    l.finished_at = std::min(now_, l.end);
    if (Chance(0.8)) {
      Log("release " + std::to_string(id));
      EXPECT_TRUE(q_.Release(id)) << Where();
      leases_.erase(id);
      gone_.insert(id);
    }
  }

  void AdvanceTime() {
    const TimePoint was = now_;
    AdvanceTimeBy();
    if (now_ != was) Log("time " + Str(now_));
  }
  void AdvanceTimeBy() {
    if (Chance(0.5)) {
      now_ += milliseconds(Uniform(0, 40'000));
      return;
    }
    // To the next moment something is due: a lease's end or a planned start.
    std::optional<TimePoint> next;
    auto consider = [&](TimePoint t) {
      if (t > now_ && (!next || t < *next)) next = t;
    };
    for (const auto& [id, l] : leases_) consider(l.draining ? l.finished_at + drain_ : l.end);
    for (const auto& [id, r] : Ref()) {
      if (r.start) consider(*r.start);
    }
    if (next) now_ = *next;
  }

  void ScheduleAndCheck() {
    const auto before = Ref();
    const std::set<int> taken = TakenGpus();
    std::vector<Placement> expected;  // what the reference plans for now
    for (const auto& [key, t] : queue_) {
      const RefReservation& r = before.at(t.id);
      if (r.start == now_) expected.push_back({t.id, r.gpus, now_, now_ + t.duration});
    }

    const std::vector<Placement> started = q_.Schedule(now_);
    std::string s;
    for (const Placement& p : started) s += " " + std::to_string(p.id) + " on " + List(p.gpus);
    Log("schedule:" + s);

    // Every start is a queued task placed on GPUs that were in no lease, in
    // queue order.
    std::optional<QueueKey> last;
    for (const Placement& p : started) {
      const auto it = std::find_if(queue_.begin(), queue_.end(),
                                   [&](const auto& e) { return e.second.id == p.id; });
      ASSERT_NE(it, queue_.end()) << Where() << " started unknown task " << p.id;
      EXPECT_TRUE(!last || *last < it->first) << Where() << " out of order: " << p.id;
      last = it->first;
      EXPECT_EQ(p.start, now_);
      EXPECT_EQ(p.end, now_ + it->second.duration);
      const Task& t = it->second;
      if (t.gpus.empty()) {
        EXPECT_EQ(static_cast<int>(p.gpus.size()), t.gpu_count) << Where();
      } else {
        EXPECT_EQ(p.gpus, t.gpus) << Where();
      }
      for (int g : p.gpus) {
        EXPECT_TRUE(g >= 0 && g < gpu_count_) << Where() << " task " << p.id << " GPU " << g;
        EXPECT_FALSE(taken.contains(g)) << Where() << " task " << p.id << " on leased GPU " << g;
      }
      leases_[p.id] = RefLease{p.gpus, p.end, false, {}};
      queue_.erase(it);
    }
    // No GPU in two leases (the model's leases are what the queue reported).
    std::multiset<int> all;
    for (const auto& [id, l] : leases_) all.insert(l.gpus.begin(), l.gpus.end());
    for (int g : all) ASSERT_EQ(all.count(g), 1u) << Where() << " GPU " << g << " leased twice";

    // No start delayed a task that was ahead of it: every task still queued
    // has its reservation, from the reference, no later than before.
    ref_.reset();
    const auto& after = Ref();
    for (const auto& [key, t] : queue_) {
      const auto& b = before.at(t.id).start;
      const auto& a = after.at(t.id).start;
      EXPECT_TRUE(a == b || (a && b && *a < *b))
          << Where() << " task " << t.id << " delayed from " << Str(b) << " to " << Str(a);
    }
    // And exactly the tasks the reference starts, on the same GPUs.
    EXPECT_EQ(started, expected) << Where();
    if (Chance(0.5)) CheckEstimates(after);
  }

  void CheckEstimates(const std::map<int64_t, RefReservation>& ref) {
    const auto alone = RefPlan(gpu_count_, now_, drain_, leases_, queue_, /*with_queue=*/false);
    const auto estimates = q_.Estimates(now_);
    ASSERT_EQ(estimates.size(), queue_.size()) << Where();
    auto it = queue_.begin();
    for (const auto& [id, start] : estimates) {
      ASSERT_EQ(id, it->second.id) << Where() << " queue order";
      ++it;
      if (start) {
        EXPECT_GE(*start, now_) << Where();
        // Never earlier than possible, whatever the rest of the queue does.
        ASSERT_TRUE(alone.at(id).start.has_value()) << Where();
        EXPECT_GE(*start, *alone.at(id).start) << Where() << " task " << id;
      }
      EXPECT_EQ(start, ref.at(id).start)
          << Where() << " task " << id << ": " << Str(start) << " vs " << Str(ref.at(id).start);
    }
  }

  void Check() {
    ASSERT_EQ(q_.queued(), queue_.size()) << Where();
    ASSERT_EQ(q_.running(), leases_.size()) << Where();
    // Every task in exactly the state the model has it in.
    for (const auto& [key, t] : queue_) EXPECT_EQ(q_.state(t.id), TaskState::kQueued) << Where();
    for (const auto& [id, l] : leases_) {
      EXPECT_EQ(q_.state(id), l.draining ? TaskState::kDraining : TaskState::kRunning) << Where();
    }
    for (int64_t id : gone_) {
      if (!leases_.contains(id)) {
        EXPECT_EQ(q_.state(id), TaskState::kUnknown) << Where();
      }
    }
    // Spot checks of single estimates, against the reference.
    if (!queue_.empty() && Chance(0.3)) {
      const auto& ref = Ref();
      for (int i = 0; i < 3; ++i) {
        const int64_t id = Pick(queue_)->second.id;
        EXPECT_EQ(q_.EstimatedStart(id, now_), ref.at(id).start) << Where() << " task " << id;
      }
    }
  }

  std::mt19937_64 rng_;
  int max_gpus_;
  size_t max_queue_;
  bool busy_;
  int gpu_count_;
  milliseconds drain_;
  MachineQueue q_;
  TimePoint now_ = kT0;
  int step_ = 0;
  int64_t next_id_ = 1;
  std::map<QueueKey, Task> queue_;
  std::map<int64_t, RefLease> leases_;
  std::set<int64_t> gone_;
  std::vector<std::string> log_;
  std::optional<std::map<int64_t, RefReservation>> ref_;  // Ref(), until the model changes
};

// SCHED_RANDOM_SEEDS=n runs n times as many seeds (a longer soak).
uint64_t Seeds(uint64_t n) {
  const char* scale = std::getenv("SCHED_RANDOM_SEEDS");
  return scale ? n * std::max(1, std::atoi(scale)) : n;
}

TEST(MachineQueueRandom, MatchesReferenceOnSmallMachines) {
  for (uint64_t seed = 1; seed <= Seeds(32) && !HasFailure(); ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    Simulation(seed, static_cast<int>(1 + seed % 8), 24).Run(300);
  }
}

TEST(MachineQueueRandom, MatchesReferenceOnABiggerMachine) {
  for (uint64_t seed = 1000; seed < 1000 + Seeds(2) && !HasFailure(); ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    Simulation(seed, 40, 60).Run(250);
  }
}

TEST(MachineQueueRandom, MatchesReferenceOnBusyMachinesWithLongQueues) {
  for (uint64_t seed = 2000; seed < 2000 + Seeds(8) && !HasFailure(); ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    Simulation(seed, static_cast<int>(2 + seed % 7), 40, /*busy=*/true).Run(200);
  }
}

}  // namespace
}  // namespace gpuhub::sched
