// Profile: the availability of one machine's GPUs over time, as reservations
// are added to it in queue order. Internal to the scheduler (MachineQueue);
// not a public interface. Not thread-safe.
//
// Each GPU g is free from its `tail` on, forever, and also in zero or more
// bounded "holes" before its tail (time left free in front of a reservation).
// Everything else after `now` is busy (a lease or a reservation).
//
// A free run [a, b) can hold a task of duration d from any start in the
// "window" [max(a, now), b - d]. A search for k GPUs for d merges two streams
// of windows in order of their first start: the tails, from a binary min-heap
// (lazy deletion), and the holes at least d long, from sets ordered by start,
// one per length class (a quarter octave; classes shorter than d are never
// looked at). It keeps the ends of the windows still open in a min-heap and
// stops at the first start where k are open: the earliest time T the task
// fits. Place* then reserves [T, T + d) on the chosen GPUs (the lowest
// indices, or the named ones), splitting the runs it uses.
//
// Within one plan the profile only gains reservations, so a task cannot start
// before an earlier one that needed fewer GPUs for less time. That lower bound
// ("floor") lets each length class skip, by one lookup, the holes that end too
// early to matter.
//
// Cost of one Place* call: O((k + w) log(G + c) + c log h), where k is the
// GPUs the task needs, w the holes at least d long that start before T and
// after its floor, c the length classes >= d in use (a handful), and h the
// holes of a class. Typically w is 0 or a few; it is largest for tasks that
// want most of a small machine, which must pass every long hole before the
// time enough GPUs are free at once.
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
// Every length of class c is shorter than this.
Duration LengthClassBound(int c);

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
  // on, with no reservations.
  void Reset(TimePoint now, const std::vector<TimePoint>& base);

  // Moves `now` forward. Valid only while no reservation starts before `now`
  // (the caller checks); the profile at times >= now is unchanged.
  void Reanchor(TimePoint now);

  // Reserves `count` GPUs (1 <= count <= gpu_count()) for `d` at the earliest
  // time >= now they are free, choosing the lowest indices. Writes the chosen
  // GPUs, ascending, to *chosen; returns T.
  TimePoint PlaceCount(int count, Duration d, std::vector<int>* chosen);

  // Reserves exactly `gpus` (distinct, each < gpu_count()) for `d` at the
  // earliest time >= now they are all free; returns that time.
  TimePoint PlaceGpus(const std::vector<int>& gpus, Duration d);

  // GPUs free at `now` (their base was <= now) whose time at now no
  // reservation has taken yet, and the longest such free stretch from now
  // (Duration::max() if unbounded).
  int free_open() const { return free_open_; }
  Duration MaxOpenWindow();

  // How a task of `count` GPUs (or exactly `gpus`, if not empty) for `d`
  // relates to the free stretches at now, the only time a task can start in:
  //   kFits:    it fits in them now; *chosen gets the GPUs PlaceCount/PlaceGpus
  //             would pick, whatever is reserved after those stretches.
  //   kTooLong: it is longer than each of them that it could use, so no
  //             placement of it can take any of that time.
  //   kMaybe:   neither; where it goes depends on the rest of the profile.
  enum class AtNow { kFits, kTooLong, kMaybe };
  AtNow FitAtNow(int count, const std::vector<int>& gpus, Duration d, std::vector<int>* chosen);

  // The earliest start a task could get in the profile as it is, without
  // reserving anything; a lower bound for it once more is reserved.
  TimePoint Probe(int count, const std::vector<int>& gpus, Duration d);
  // When the last free stretch at now ends (now if none is left).
  TimePoint OpenUntil();
  // The longest free run that crosses `w` (starts before it, ends after it),
  // counted from now: zero if none ("a wall at w"), Duration::max() if a
  // GPU's tail starts before w. It never grows as reservations are added.
  // Amortized O(holes of each class that start within a class length before
  // w) once MinTail() >= w.
  Duration Crossing(TimePoint w);
  // When the first GPU's tail begins (kNever with no GPUs); amortized O(1).
  TimePoint MinTail();
  // The longest time one GPU is free in one run from now until `w` (zero if
  // none): no task longer than that can start before w. O(G + classes +
  // holes of the longest classes that start before w).
  Duration LongestRunBefore(TimePoint w) const;

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
  // The window streams (see the file comment). Holes that end before
  // floor + d cannot be open at or after `floor`, and are skipped.
  void StartHoles(Duration d, bool named, TimePoint floor);
  bool PeekHole(Window* w);
  void TakeHole();
  bool PeekTail(bool named, Window* w);
  void TakeTail(bool named);
  // Sets up named_tails_ and the marks for a search of exactly `gpus`.
  void StartNamed(const std::vector<int>& gpus);
  // Reserves [t, t + d) on the runs in candidates_.
  void Reserve(TimePoint t, Duration d);
  void AddHole(int gpu, TimePoint start, TimePoint end);
  void SetTail(int gpu, TimePoint tail);  // gpu has no live heap entry or gets a new one
  void PushTail(TimePoint tail, int gpu);
  void PopTail();

  // Within one plan the profile only gains reservations, so a task needing at
  // least k GPUs for at least d cannot start before an earlier task that
  // needed fewer for less did. floors_[k][c]: the latest start found so far
  // for a task of at most k GPUs (k <= kFloorGpus) and a duration of octave c
  // (bit width in ms).
  static constexpr int kFloorGpus = 16;
  TimePoint Floor(int count, Duration d) const;
  void RaiseFloors(int count, Duration d, TimePoint start);
  std::vector<std::array<TimePoint, 64>> floors_;

  TimePoint now_{};
  std::vector<TimePoint> tail_;       // per GPU
  std::vector<TailEntry> tail_heap_;  // min-heap by (tail, gpu)
  HoleSet holes_[kLengthClasses];     // by length class
  ClassSet hole_classes_;             // classes with holes
  std::vector<int> free_now_;         // GPUs free at now in the base, ascending
  std::vector<char> is_free_now_;     // per GPU: in free_now_
  std::vector<TimePoint> open_end_;   // per GPU of free_now_: first reservation start
  int free_open_ = 0;
  Duration max_open_ = Duration::zero();
  bool max_open_dirty_ = true;

  // Scratch, kept to avoid allocations.
  struct Cursor {  // the next hole of a class that can hold the task
    int cls;
    HoleSet::iterator it;
    TimePoint lo;  // its first start
  };
  // Moves c to the next hole that can hold the task; false if none is left.
  bool Settle(Cursor& c);
  std::vector<Cursor> cursors_;  // min-heap by lo
  Duration search_d_{};
  bool search_named_ = false;
  std::vector<Window> named_tails_;
  size_t named_next_ = 0;
  std::vector<TailEntry> popped_;   // live tails taken off the heap by a search
  std::vector<Window> pulled_;      // every window a search took from the streams
  std::vector<TimePoint> open_hi_;  // min-heap: the his of the windows still open
  std::vector<Window> candidates_;
  std::vector<Hole> pending_;
  std::vector<uint32_t> mark_;
  uint32_t stamp_ = 0;
};

}  // namespace gpuhub::sched::detail
