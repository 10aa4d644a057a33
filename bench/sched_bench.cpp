// The lease scheduler (src/sched) at 10,000 queued tasks, on a machine of 8
// GPUs and one of 1,000 (the argument). The machine is busy: every GPU starts
// in a lease ending within 12 h, and the queue holds 10,000 tasks of 10 min to
// 12 h (mostly 1 GPU, some 2, 4, 8, a few naming their GPUs), already planned.
//
//   Enqueue            one more task at the back of the queue
//   Submit             what the server does per submission: Enqueue,
//                      Schedule(now), EstimatedStart(new task); 0.5 ms apart
//   ScheduleBusy       Schedule(now) while no GPU is free (the usual call)
//   ScheduleOnRelease  the lease that ends first ends, at its end, and comes
//                      back (Finish, Release, untimed); then Schedule(now),
//                      timed, which plans from the head. New tasks replace
//                      those that start. 2,000 lease ends in a row; the time
//                      is the mean, with p50, p99, max and the number of
//                      calls over 1 ms as counters
//   ScheduleOnEarlyEnd the same, but a random lease ends early (its command
//                      exited), up to a minute after the previous one
//   EstimatesReplan    Estimates(now) after the plan was dropped: plans all
//                      10,000 (the worst case of a Schedule, too)
//   EstimatesCached    Estimates(now) with the plan kept
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <set>
#include <vector>

#include "sched/scheduler.hpp"

namespace {

using gpuhub::TimePoint;
using gpuhub::sched::MachineQueue;
using gpuhub::sched::Task;
using std::chrono::hours;
using std::chrono::milliseconds;
using std::chrono::minutes;

constexpr int kQueued = 10'000;
const TimePoint kT0 = TimePoint{} + hours(24 * 365 * 56);

class Workload {
 public:
  explicit Workload(int gpus) : gpus_(gpus), q_(gpus), rng_(42) {
    for (int g = 0; g < gpus; ++g) {
      const TimePoint end = kT0 + minutes(Uniform(1, 12 * 60));
      (void)q_.Restore(next_id_, {g}, end);
      ends_.insert({end, next_id_++});
    }
    for (int i = 0; i < kQueued; ++i) Add();
    benchmark::DoNotOptimize(q_.Estimates(now_));
  }

  MachineQueue& q() { return q_; }
  TimePoint& now() { return now_; }

  // Queues one more random task; returns its id.
  int64_t Add() {
    Task t;
    t.id = next_id_++;
    t.submit_time = now_;
    t.duration = minutes(Uniform(10, 12 * 60));
    const int r = Uniform(0, 99);
    if (r < 5) {
      const int n = Uniform(1, 2);
      for (int i = 0; i < n; ++i) {
        int g = Uniform(0, gpus_ - 1);
        while (i == 1 && g == t.gpus[0]) g = Uniform(0, gpus_ - 1);
        t.gpus.push_back(g);
      }
      t.gpu_count = n;
    } else {
      t.gpu_count = r < 55 ? 1 : r < 75 ? 2 : r < 90 ? 4 : 8;
      t.gpu_count = std::min(t.gpu_count, gpus_);
    }
    if (!q_.Enqueue(t).ok()) std::abort();
    return t.id;
  }

  // Ends the lease that ends first, at its end: finished and released.
  void EndNextLease() { End(ends_.begin(), ends_.begin()->first); }

  // Ends a random lease early, up to a minute from now (never past the end
  // of another one): finished and released.
  void EndRandomLease() {
    const TimePoint at =
        std::min(now_ + std::chrono::seconds(Uniform(0, 60)), ends_.begin()->first);
    End(std::next(ends_.begin(), Uniform(0, static_cast<int>(ends_.size()) - 1)), at);
  }

  void Started(const std::vector<gpuhub::sched::Placement>& ps) {
    for (const auto& p : ps) ends_.insert({p.end, p.id});
  }

  // Drops the plan without changing what it plans: a lease on a GPU beyond
  // the machine, restored and released.
  void DropPlan() {
    const int64_t id = next_id_++;
    (void)q_.Restore(id, {gpus_}, now_);
    q_.Release(id);
  }

 private:
  int Uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng_); }

  int gpus_;
  MachineQueue q_;
  std::mt19937 rng_;
  TimePoint now_ = kT0;
  int64_t next_id_ = 1;
  std::set<std::pair<TimePoint, int64_t>> ends_;  // running leases by end

  void End(std::set<std::pair<TimePoint, int64_t>>::iterator lease, TimePoint at) {
    const int64_t id = lease->second;
    ends_.erase(lease);
    now_ = std::max(now_, at);
    q_.Finish(id, now_);
    q_.Release(id);
  }
};

void BM_Enqueue(benchmark::State& state) {
  Workload w(static_cast<int>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(w.Add());
  state.counters["queued"] = static_cast<double>(w.q().queued());
}

void BM_Submit(benchmark::State& state) {
  Workload w(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    w.now() += std::chrono::microseconds(500);
    const int64_t id = w.Add();
    w.Started(w.q().Schedule(w.now()));
    benchmark::DoNotOptimize(w.q().EstimatedStart(id, w.now()));
  }
  state.counters["queued"] = static_cast<double>(w.q().queued());
}

void BM_ScheduleBusy(benchmark::State& state) {
  Workload w(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    w.now() += milliseconds(1);
    benchmark::DoNotOptimize(w.q().Schedule(w.now()));
  }
}

// Ends a lease (`early`: a random one, early; otherwise the first to end, at
// its end), then times Schedule(now).
void ScheduleAfterLeaseEnds(benchmark::State& state, bool early) {
  Workload w(static_cast<int>(state.range(0)));
  size_t started = 0;
  std::vector<double> us;
  for (auto _ : state) {
    if (early) {
      w.EndRandomLease();
    } else {
      w.EndNextLease();
    }
    const auto t0 = std::chrono::steady_clock::now();
    const auto ps = w.q().Schedule(w.now());
    const std::chrono::duration<double> took = std::chrono::steady_clock::now() - t0;
    state.SetIterationTime(took.count());
    us.push_back(took.count() * 1e6);
    started += ps.size();
    w.Started(ps);
    for (size_t i = 0; i < ps.size(); ++i) w.Add();
  }
  std::sort(us.begin(), us.end());
  state.counters["p50_us"] = us[us.size() / 2];
  state.counters["p99_us"] = us[us.size() * 99 / 100];
  state.counters["max_us"] = us.back();
  state.counters["over_1ms"] =
      static_cast<double>(us.end() - std::upper_bound(us.begin(), us.end(), 1000.0));
  state.counters["started/call"] =
      static_cast<double>(started) / static_cast<double>(state.iterations());
  state.counters["queued"] = static_cast<double>(w.q().queued());
}

void BM_ScheduleOnRelease(benchmark::State& state) { ScheduleAfterLeaseEnds(state, false); }
void BM_ScheduleOnEarlyEnd(benchmark::State& state) { ScheduleAfterLeaseEnds(state, true); }

void BM_EstimatesReplan(benchmark::State& state) {
  Workload w(static_cast<int>(state.range(0)));
  for (auto _ : state) {
    state.PauseTiming();
    w.DropPlan();
    state.ResumeTiming();
    benchmark::DoNotOptimize(w.q().Estimates(w.now()));
  }
}

void BM_EstimatesCached(benchmark::State& state) {
  Workload w(static_cast<int>(state.range(0)));
  for (auto _ : state) benchmark::DoNotOptimize(w.q().Estimates(w.now()));
}

BENCHMARK(BM_Enqueue)->Arg(8)->Arg(1000)->Iterations(2000);
BENCHMARK(BM_Submit)->Arg(8)->Arg(1000)->Iterations(2000)->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ScheduleBusy)->Arg(8)->Arg(1000);
BENCHMARK(BM_ScheduleOnRelease)
    ->Arg(8)
    ->Arg(1000)
    ->Iterations(2000)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_ScheduleOnEarlyEnd)
    ->Arg(8)
    ->Arg(1000)
    ->Iterations(2000)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_EstimatesReplan)->Arg(8)->Arg(1000)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_EstimatesCached)->Arg(8)->Arg(1000)->Unit(benchmark::kMicrosecond);

}  // namespace

BENCHMARK_MAIN();
