// MachineQueue: the GPU lease scheduler of one machine (spec/api.md section 7).
//
// Pure logic: no I/O, no threads, no clock reads; the caller passes `now`.
//
// Thread-safety: none. The server guards each machine's queue with its own
// lock. Even the const methods update an internal cache (the plan below), so
// they too must hold that lock; two MachineQueues are independent.
//
// Rules. Tasks (lease requests) are ordered by (submit_time, id). In that
// order each queued task gets a reservation: the earliest time T >= now at
// which its GPUs are free for its whole duration, given the running and
// draining leases and the reservations of the tasks ahead of it (conservative
// backfill: a task may start ahead of earlier ones only in time that none of
// their reservations uses, so it delays none of them). A task that asks for
// `gpu_count` GPUs takes the lowest free indices (at T == now, GPUs that no
// lease holds come first); one that names `gpus` waits for exactly those. T is
// the task's estimated start. A task starts when T == now and none of its GPUs
// is still in a lease.
//   - A running lease counts as ending at max(end, now).
//   - A finished lease (completed, failed, cancelled, expired) drains: its GPUs
//     stay unavailable until Release (the agent reports its processes gone),
//     and count as free at max(finished_at + drain_estimate, now).
//   - A task that names a GPU >= gpu_count, or wants more GPUs than there are,
//     stays queued without a reservation (estimate nullopt) and holds up no one.
//   - A GPU is never in two leases: Restore refuses a taken GPU, and Schedule
//     only starts tasks on GPUs that no lease holds.
//
// The plan (every queued task's reservation) is computed lazily, in queue
// order, and kept between calls. It stays valid when tasks are appended at
// the back of the queue, when tasks start, and as `now` advances, as long as
// no reservation's start has been reached; anything else (a lease finishing
// or released, a cancel of a task already planned, a restore, a GPU count
// change, a task inserted before planned ones) drops it, and the next call
// plans again from the head. See scheduler.cpp for the costs; in short, with n
// queued tasks on G GPUs:
//   - Enqueue, Cancel, Finish, Release: O(log n).
//   - Schedule(now): O(1) when no GPU is free (the usual case on a busy
//     machine), or when the plan is valid and no reservation starts by now.
//     Otherwise it re-plans from the head, O(G log G) plus one placement per
//     task, and stops as soon as no later task could start now (no free GPU
//     is unclaimed at now, or every later task is longer than every free
//     stretch or wider than the free GPUs), so it usually plans a handful.
//   - EstimatedStart, Estimates: plan up to the task / to the end: at most n
//     placements after an invalidation, only the new tasks otherwise.
//   - One placement: O(k log G + q log q), k the task's GPUs, q the free gaps
//     ("holes") in front of reservations at least as long as the task's length
//     class (profile.hpp).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/clock.hpp"
#include "common/result.hpp"
#include "sched/profile.hpp"

namespace gpuhub::sched {

// A lease request. Exactly one of: gpu_count >= 1 with `gpus` empty (any GPUs),
// or `gpus` listing distinct indices with gpu_count == gpus.size().
struct Task {
  int64_t id = 0;
  TimePoint submit_time;
  std::chrono::milliseconds duration{0};  // > 0, at most kMaxDuration
  int gpu_count = 0;
  std::vector<int> gpus;  // explicit GPU indices, or empty
};

// A task that starts now: it runs on `gpus` over [start, end).
struct Placement {
  int64_t id = 0;
  std::vector<int> gpus;  // ascending for gpu_count tasks; as named otherwise
  TimePoint start;
  TimePoint end;
  bool operator==(const Placement&) const = default;
};

enum class TaskState { kUnknown, kQueued, kRunning, kDraining };

inline constexpr std::chrono::milliseconds kMaxDuration = std::chrono::hours(24 * 3650);

class MachineQueue {
 public:
  explicit MachineQueue(int gpu_count,
                        std::chrono::milliseconds drain_estimate = std::chrono::seconds(30));

  // The machine's GPU count, from its inventory (negative counts as 0). Leases
  // on GPUs that are gone stay until released.
  void SetGpuCount(int n);
  int gpu_count() const { return gpu_count_; }

  // Queues a task. InvalidArgument: gpu_count < 1; `gpus` with a negative or
  // repeated index, or not gpu_count long; duration <= 0 or > kMaxDuration.
  // Conflict: the id is queued or in a lease already.
  Status Enqueue(const Task& t);

  // Takes a queued task out of the queue; false if it is not queued.
  bool Cancel(int64_t id);

  // Records a running lease (after a server restart, from the database and the
  // agent's report). `gpus` may name GPUs >= gpu_count (they stay taken).
  // InvalidArgument: `gpus` empty, negative or repeated. Conflict: the id is
  // queued or in a lease, or one of the GPUs is in a lease.
  Status Restore(int64_t id, std::vector<int> gpus, TimePoint end);

  // A running lease ended at `now` (completed, failed, cancelled, expired): it
  // drains, its GPUs still unavailable. False if `id` is not running.
  bool Finish(int64_t id, TimePoint now);

  // The lease's processes are gone: its GPUs are free. Works on a running
  // lease too. False if `id` is in no lease.
  bool Release(int64_t id);

  // Starts the queued tasks that start now (see the rules), in queue order:
  // they become running leases ending at now + duration.
  std::vector<Placement> Schedule(TimePoint now);

  // The queued task's estimated start (its reservation) at `now`: nullopt if
  // it is not queued or cannot be placed on this machine as it is now.
  std::optional<TimePoint> EstimatedStart(int64_t id, TimePoint now) const;

  // Every queued task with its estimated start, in queue order.
  std::vector<std::pair<int64_t, std::optional<TimePoint>>> Estimates(TimePoint now) const;

  TaskState state(int64_t id) const;
  size_t queued() const { return queue_.size(); }
  size_t running() const { return leases_.size(); }  // running and draining leases

 private:
  using Key = std::pair<TimePoint, int64_t>;  // (submit_time, id): queue order
  struct Entry {
    Task task;
    // The reservation, once planned (before next_): its start (nullopt: the
    // task cannot be placed) and GPUs. Part of the cache.
    mutable std::optional<TimePoint> start;
    mutable std::vector<int> gpus;
  };
  using Queue = std::map<Key, Entry>;
  struct Lease {
    std::vector<int> gpus;
    TimePoint end;
    bool draining = false;
    TimePoint finished_at;
  };
  // Queued tasks by (bit width of GPU count, length class of duration):
  // answers "could any of them fit k free GPUs for d?" in O(log k).
  class Histogram {
   public:
    void Add(const Task& t, int delta);
    bool AnyFits(int gpus, detail::Duration d) const;

   private:
    static constexpr int kRows = 33;
    std::array<std::array<int32_t, detail::kLengthClasses>, kRows> counts_{};
    std::array<detail::ClassSet, kRows> nonzero_{};
  };

  void Invalidate() { plan_valid_ = false; }
  // Makes the plan valid at `now`: keeps it, moves it to `now`, or starts over.
  void EnsurePlan(TimePoint now) const;
  // Plans the first unplanned task.
  void PlanNext() const;
  bool Planned(Queue::const_iterator it) const;
  // Whether no unplanned task could start now, whatever is planned before it.
  bool NothingMoreStartsNow() const;
  TimePoint Availability(const Lease& l, TimePoint now) const;
  void TakeGpus(int64_t id, const std::vector<int>& gpus);
  void FreeGpus(const std::vector<int>& gpus);
  bool Taken(int gpu) const { return gpu < static_cast<int>(taken_.size()) && taken_[gpu]; }

  int gpu_count_;
  detail::Duration drain_estimate_;
  Queue queue_;
  std::unordered_map<int64_t, Key> queued_;
  std::unordered_map<int64_t, Lease> leases_;
  std::vector<char> taken_;  // per GPU index (any size): in a lease
  int free_ = 0;             // GPUs < gpu_count_ in no lease
  Histogram all_;

  // The plan (a cache; see the header comment).
  mutable bool plan_valid_ = false;
  mutable TimePoint plan_now_;
  mutable Queue::const_iterator next_;  // first unplanned task, or end
  mutable detail::Profile profile_;
  mutable Histogram unplanned_;
  mutable std::vector<Queue::const_iterator> due_;  // planned to start at plan_now_, in order
  mutable TimePoint next_start_;                    // earliest planned start after plan_now_
};

}  // namespace gpuhub::sched
