// Profile: the availability of one machine's GPUs over time, as reservations
// are added to it in queue order. Internal to the scheduler (MachineQueue);
// not a public interface. Not thread-safe.
//
// Each GPU g is free from its `tail` on, forever, and also in zero or more
// bounded "holes" before its tail (time left free in front of a reservation).
// Everything else after `now` is busy (a lease or a reservation).
//
// A search for a task that needs k GPUs for d looks at "windows": a free run
// [a, b) of one GPU can hold the task from any start in [max(a, now), b - d].
// It merges two streams of windows in order of their first start: the tails,
// from a binary min-heap, and the holes at least d long, from sets ordered by
// start, one per length class (a quarter octave of lengths; classes shorter
// than d are never looked at). It keeps the windows still open in a
// min-heap by their last start, and stops at the first start where k are
// open: the earliest time the task fits. Place* then reserves [T, T + d) on
// the chosen GPUs, splitting the runs used.
//
// Cost of one Place* call: O((k + w) (log G + c)) plus O(log h) per GPU taken,
// where w is the holes streamed before the answer (long enough, but starting
// earlier than it), c the length classes >= d in use (at most ~40, usually a
// handful), and h the holes.
#pragma once

#include <array>
#include <bit>
#include <chrono>
#include <cstdint>
#include <set>
#include <utility>
#include <vector>

#include "common/clock.hpp"

namespace gpuhub::sched::detail {

using Duration = TimePoint::duration;
inline constexpr TimePoint kNever = TimePoint::max();

// t + d, or kNever when that does not fit in a TimePoint. d >= 0.
TimePoint SaturatingAdd(TimePoint t, Duration d);

// A length's class: a quarter of an octave of milliseconds wide (0..7 ms get
// one each), nondecreasing in the length. Fewer than kLengthClasses.
int LengthClass(Duration length);
inline constexpr int kLengthClasses = 256;

// A set of length classes.
class ClassSet {
 public:
  void Add(int c) { words_[c >> 6] |= uint64_t{1} << (c & 63); }
  void Remove(int c) { words_[c >> 6] &= ~(uint64_t{1} << (c & 63)); }
  void Clear() { words_ = {}; }
  bool Any() const { return (words_[0] | words_[1] | words_[2] | words_[3]) != 0; }
  // Calls f(c) for every class c >= from in the set, in increasing order.
  template <typename F>
  void ForEachFrom(int from, F f) const {
    for (int w = from >> 6; w < 4; ++w) {
      uint64_t bits = words_[w];
      if (w == from >> 6) bits &= ~uint64_t{0} << (from & 63);
      while (bits != 0) {
        f(w * 64 + std::countr_zero(bits));
        bits &= bits - 1;
      }
    }
  }
  // Whether the set has a class <= upto.
  bool AnyUpTo(int upto) const {
    for (int w = 0; w < 4 && w <= upto >> 6; ++w) {
      uint64_t bits = words_[w];
      if (w == upto >> 6 && (upto & 63) != 63) bits &= (uint64_t{1} << ((upto & 63) + 1)) - 1;
      if (bits != 0) return true;
    }
    return false;
  }

 private:
  std::array<uint64_t, 4> words_{};
};

class Profile {
 public:
  // Starts over at `now`: GPU g (g < base.size()) is free from max(base[g], now)
  // on, with no reservations. `held[g]`: the GPU is in a lease (running or
  // draining), so it cannot start a task now even if it counts as free at now;
  // at T == now the search prefers GPUs that are not held.
  void Reset(TimePoint now, const std::vector<TimePoint>& base, const std::vector<char>& held);

  // Moves `now` forward. Valid only while no reservation starts before `now`
  // (the caller checks); the profile at times >= now is unchanged.
  void Reanchor(TimePoint now);

  // Reserves `count` GPUs (1 <= count <= gpu_count()) for `d` at the earliest
  // time >= now they are free, choosing the lowest indices (at T == now, GPUs
  // not held first). Writes the chosen GPUs, ascending, to *chosen; returns T.
  TimePoint PlaceCount(int count, Duration d, std::vector<int>* chosen);

  // Reserves exactly `gpus` (distinct, each < gpu_count()) for `d` at the
  // earliest time >= now they are all free; returns that time.
  TimePoint PlaceGpus(const std::vector<int>& gpus, Duration d);

  // The GPU is now in a lease (a task planned on it started). It keeps what
  // was reserved on it; only the preference at a later `now` changes.
  void Hold(int gpu) { held_[gpu] = 1; }

  // GPUs not held whose free time at `now` no reservation has taken yet, and
  // the longest such free stretch from now (Duration::max() if unbounded).
  int free_open() const { return free_open_; }
  Duration MaxOpenWindow();

  TimePoint now() const { return now_; }
  int gpu_count() const { return static_cast<int>(tail_.size()); }

 private:
  struct Hole {
    TimePoint start;
    TimePoint end;
    int gpu;
    bool operator<(const Hole& o) const {
      return start < o.start || (start == o.start && gpu < o.gpu);
    }
  };
  using HoleSet = std::set<Hole>;
  // An entry of the tails' heap; live while tail_[gpu] == tail (others are
  // dropped when they surface).
  struct TailEntry {
    TimePoint tail;
    int gpu;
  };
  // A free run that can hold the task from any start in [lo, hi]: the GPU's
  // tail (cls < 0, hi = kNever) or `hole`, in holes_[cls].
  struct Window {
    TimePoint lo;
    TimePoint hi;
    int gpu;
    int cls;
    HoleSet::iterator hole;
  };

  // The earliest t >= now at which `need` windows overlap; leaves in
  // candidates_ every window open at t, except tails at t beyond what the
  // choice of `need` GPUs can use. `named`: only the GPUs in named_tails_.
  TimePoint Search(int need, Duration d, bool named);
  // The window streams (see the file comment).
  void StartHoles(Duration d, bool named);
  bool PeekHole(Window* w);
  void TakeHole();
  bool PeekTail(bool named, Window* w);
  void TakeTail(bool named);
  // Reserves [t, t + d) on the runs in candidates_.
  void Reserve(TimePoint t, Duration d);
  void AddHole(int gpu, TimePoint start, TimePoint end);
  void SetTail(int gpu, TimePoint tail);  // gpu has no live heap entry or gets a new one
  void PushTail(TimePoint tail, int gpu);
  void PopTail();

  TimePoint now_{};
  std::vector<TimePoint> tail_;       // per GPU
  std::vector<TailEntry> tail_heap_;  // min-heap by (tail, gpu)
  HoleSet holes_[kLengthClasses];     // by length class
  ClassSet hole_classes_;             // classes with holes
  std::vector<char> held_;            // per GPU
  std::vector<int> unheld_;           // GPUs not held
  std::vector<TimePoint> open_end_;   // per unheld GPU: first reservation start
  int free_open_ = 0;
  Duration max_open_ = Duration::zero();
  bool max_open_dirty_ = true;

  // Scratch, kept to avoid allocations.
  struct Cursor {  // the next hole of a class that can hold the task
    int cls;
    HoleSet::iterator it;
    TimePoint lo;  // its first start; kNever when none is left
  };
  void Settle(Cursor& c);  // moves c to a hole that can hold the task
  std::vector<Cursor> cursors_;
  int picked_cursor_ = -1;
  Duration search_d_{};
  bool search_named_ = false;
  std::vector<Window> named_tails_;
  size_t named_next_ = 0;
  std::vector<TailEntry> popped_;  // live tails taken off the heap by a search
  std::vector<Window> open_;       // min-heap by hi
  std::vector<Window> candidates_;
  std::vector<Hole> pending_;
  std::vector<uint32_t> mark_;
  uint32_t stamp_ = 0;
};

}  // namespace gpuhub::sched::detail
