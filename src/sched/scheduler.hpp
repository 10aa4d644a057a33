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
// `gpu_count` GPUs takes the lowest indices free over [T, T + duration); one
// that names `gpus` waits for exactly those. T is the task's estimated start;
// Schedule(now) starts the tasks whose T is now.
//   - A running lease counts as ending at its end.
//   - A finished lease (completed, failed, cancelled, expired) drains: its GPUs
//     stay unavailable until Release (the agent reports its processes gone),
//     and count as free drain_estimate after it finished, or after its end if
//     that came first (the agent stops it at its end by itself).
//   - A lease past that time (expired but not reported yet, or draining longer
//     than estimated) counts as ending at the next whole second after now. Its
//     GPUs are not free now, so no task is planned to start on them now, and
//     the plan need not change with every `now` while the agent is late.
//   - A task that names a GPU >= gpu_count, or wants more GPUs than there are,
//     stays queued without a reservation (estimate nullopt) and holds up no one.
//   - A GPU is never in two leases: Restore refuses a taken GPU, and GPUs in
//     leases always count as busy past now, so tasks start on free GPUs only.
//
// The plan (every queued task's reservation) is computed lazily, in queue
// order, and kept between calls. It stays valid when tasks are appended at
// the back of the queue, when tasks start, and as `now` advances, as long as
// no reservation's start and no lease's end has been reached. Anything else (a
// lease finishing or released, a cancel of a task already planned, a restore, a
// GPU count change, a task inserted before planned ones) drops it, and the next
// call plans again from the head. Costs, with n queued tasks on G GPUs:
//   - Enqueue, Cancel, Finish, Release, Restore, SetGpuCount: O(log n) (plus
//     O(G) for SetGpuCount).
//   - Schedule(now): O(1) when no GPU is free (the usual call on a busy
//     machine). Otherwise it makes the plan valid at now (after a lease ended,
//     say, that means starting over: O(G log G)), starts what is planned for
//     now, and walks the queue only while some unplanned task could still start
//     now (a histogram by width and length answers that in O(log G)). A task
//     starts only in the time the free GPUs have at now, and only tasks no
//     longer than that time can take any of it, so the walk passes over too
//     long tasks unplanned and unseen (an index by length class finds the
//     next task short enough in O(log n)); starts a task that fits in that
//     time at once, even ahead of those; and plans exactly (one placement per
//     task) only up to a task that might take some of that time later. For
//     that last kind it first tries a placement without the tasks passed
//     over (a lower bound): if even that comes after the free time, it
//     passes it over too. Where a reservation walls off the free time (see
//     Schedule in scheduler.cpp), it instead reserves ahead, out of queue
//     order, the few tasks that land before the wall, and drops the plan at
//     the end. Worst case: one placement per task, as Estimates.
//   - EstimatedStart, Estimates: plan up to the task / to the end: n placements
//     after the plan was dropped, only the new tasks otherwise.
//   - One placement: see profile.hpp; O(k log G) for a task of k GPUs when no
//     gap in front of a reservation ("hole") is long enough for it, plus
//     O(log) per hole it has to look at otherwise.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
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
inline constexpr int kMaxGpus = 1 << 16;  // GPU indices are below this

class MachineQueue {
 public:
  explicit MachineQueue(int gpu_count,
                        std::chrono::milliseconds drain_estimate = std::chrono::seconds(30));
  // Movable (the plan is dropped), not copyable.
  MachineQueue(MachineQueue&& other) noexcept;
  MachineQueue& operator=(MachineQueue&& other) noexcept;
  MachineQueue(const MachineQueue&) = delete;
  MachineQueue& operator=(const MachineQueue&) = delete;

  // The machine's GPU count, from its inventory (clamped to [0, kMaxGpus]).
  // Leases on GPUs that are gone stay until released.
  void SetGpuCount(int n);
  int gpu_count() const { return gpu_count_; }

  // Queues a task. InvalidArgument: gpu_count < 1; `gpus` with a repeated
  // index or one outside [0, kMaxGpus), or not gpu_count long; duration <= 0
  // or > kMaxDuration. Conflict: the id is queued or in a lease already.
  Status Enqueue(const Task& t);

  // Takes a queued task out of the queue; false if it is not queued.
  bool Cancel(int64_t id);

  // Records a running lease (after a server restart, from the database and the
  // agent's report). `gpus` may name GPUs >= gpu_count (they stay taken).
  // InvalidArgument: `gpus` empty, repeated or outside [0, kMaxGpus).
  // Conflict: the id is queued or in a lease, or one of the GPUs is.
  Status Restore(int64_t id, std::vector<int> gpus, TimePoint end);

  // A running lease ended (completed, failed, cancelled, expired), at `now` or
  // at its end if that was earlier: it drains, its GPUs still unavailable.
  // False if `id` is not running.
  bool Finish(int64_t id, TimePoint now);

  // The lease's processes are gone: its GPUs are free. Works on a running
  // lease too. False if `id` is in no lease.
  bool Release(int64_t id);

  // Starts the queued tasks whose reservation begins now (see the rules), in
  // queue order: they become running leases ending at now + duration.
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
  // answers "could any of them fit k free GPUs for d?" in O(log k). Its
  // table (35 KB) is allocated by the first Add, so a machine that never had
  // a queued task costs little (a server holds one queue per machine).
  class Histogram {
   public:
    Histogram() = default;
    Histogram(const Histogram& other);
    Histogram& operator=(const Histogram& other);
    Histogram(Histogram&&) noexcept = default;
    Histogram& operator=(Histogram&&) noexcept = default;
    ~Histogram() = default;

    void Add(const Task& t, int delta);
    bool AnyFits(int gpus, detail::Duration d) const;

   private:
    static constexpr int kRows = 33;
    struct Table {
      std::array<std::array<int32_t, detail::kLengthClasses>, kRows> counts{};
      std::array<detail::ClassSet, kRows> nonzero{};
    };
    std::unique_ptr<Table> table_;  // null: every count is 0
  };

  // Queued tasks by (length class of their duration, queue order), so that
  // Schedule's walk visits only the tasks short enough to matter, in queue
  // order (a merge of one cursor per class), and skips the rest unseen.
  class ByLength {
   public:
    void Add(Queue::const_iterator it);
    void Remove(Queue::const_iterator it);
    // Starts a walk: Next(after, max_class) is then the first queued task
    // after `after` of a class <= max_class, or nullopt. Across one walk,
    // `after` and max_class may not go down and up again respectively, and
    // a task may be removed only once Next has gone past it.
    void StartWalk(const Key& after, int max_class);
    std::optional<Queue::const_iterator> Next(const Key& after, int max_class);

   private:
    using Index = std::map<std::pair<int, Key>, Queue::const_iterator>;
    static bool Later(Index::const_iterator a, Index::const_iterator b) {
      return a->first.second > b->first.second;
    }
    Index index_;
    std::vector<Index::const_iterator> cursors_;  // min-heap by queue order
  };

  void Invalidate() { plan_valid_ = false; }
  // Makes the plan valid at `now`: keeps it, moves it to `now`, or starts over.
  void EnsurePlan(TimePoint now) const;
  // Plans the first unplanned task.
  void PlanNext() const;
  bool Planned(Queue::const_iterator it) const;
  TimePoint Availability(const Lease& l, TimePoint now) const;
  void TakeGpus(const std::vector<int>& gpus);
  // Makes the queued task a running lease on `gpus` from now (the caller
  // erases it from queue_).
  Placement Start(Queue::const_iterator it, const std::vector<int>& gpus, TimePoint now);
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
  ByLength by_length_;

  // The plan (a cache; see the header comment).
  mutable bool plan_valid_ = false;
  mutable TimePoint plan_now_;
  mutable Queue::const_iterator next_;  // first unplanned task, or end
  mutable detail::Profile profile_;
  mutable Histogram unplanned_;
  Histogram ahead_;  // Schedule's scratch: unplanned tasks behind those passed over
  mutable std::vector<Queue::const_iterator> due_;  // planned to start at plan_now_, in order
  mutable TimePoint next_start_;                    // earliest planned start after plan_now_
  mutable TimePoint next_lease_end_;  // earliest time a lease counts as ending (> plan_now_)
};

}  // namespace gpuhub::sched
