#include "sched/profile.hpp"

#include <algorithm>
#include <bit>
#include <cassert>
#include <functional>

namespace gpuhub::sched::detail {

TimePoint SaturatingAdd(TimePoint t, Duration d) {
  assert(d >= Duration::zero());
  if (t.time_since_epoch() > Duration::max() - d) return kNever;
  return t + d;
}

int LengthClass(Duration length) {
  const auto ms = static_cast<uint64_t>(
      std::max<int64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(length).count(), 0));
  if (ms < 8) return static_cast<int>(ms);
  const int width = static_cast<int>(std::bit_width(ms));  // >= 4
  const int quarter = static_cast<int>((ms >> (width - 3)) & 3);
  return 8 + (width - 4) * 4 + quarter;
}

Duration LengthClassBound(int c) {
  using std::chrono::milliseconds;
  if (c < 8) return milliseconds(c + 1);
  const int width = (c - 8) / 4 + 4;
  const int quarter = (c - 8) % 4;
  if (width >= 63) return Duration::max();
  const int64_t ms = (int64_t{1} << (width - 1)) + (int64_t{quarter + 1} << (width - 3));
  return ms >= std::chrono::duration_cast<milliseconds>(Duration::max()).count()
             ? Duration::max()
             : Duration(milliseconds(ms));
}

namespace {

int Octave(Duration d) {
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  return static_cast<int>(std::bit_width(static_cast<uint64_t>(std::max<int64_t>(ms, 0))));
}

// Orders for std::*_heap, which keep the greatest element in front.
struct LaterTail {
  template <typename E>
  bool operator()(const E& a, const E& b) const {
    return a.tail > b.tail || (a.tail == b.tail && a.gpu > b.gpu);
  }
};
struct LaterLo {
  template <typename C>
  bool operator()(const C& a, const C& b) const {
    return a.lo > b.lo;
  }
};

}  // namespace

void Profile::Reset(TimePoint now, const std::vector<TimePoint>& base) {
  const size_t n = base.size();
  now_ = now;
  tail_.resize(n);
  tail_heap_.clear();
  for (size_t g = 0; g < n; ++g) {
    tail_[g] = std::max(base[g], now);
    tail_heap_.push_back({tail_[g], static_cast<int>(g)});
  }
  std::make_heap(tail_heap_.begin(), tail_heap_.end(), LaterTail());
  hole_classes_.ForEachFrom(0, [&](int c) { holes_[c].clear(); });
  hole_classes_.Clear();
  free_now_.clear();
  is_free_now_.assign(n, 0);
  for (size_t g = 0; g < n; ++g) {
    if (tail_[g] == now) {
      free_now_.push_back(static_cast<int>(g));
      is_free_now_[g] = 1;
    }
  }
  open_end_.assign(n, kNever);
  free_open_ = static_cast<int>(free_now_.size());
  max_open_dirty_ = true;
  mark_.assign(n, 0);
  stamp_ = 0;
  std::array<TimePoint, 64> none;
  none.fill(TimePoint::min());
  floors_.assign(std::min<size_t>(n, kFloorGpus) + 1, none);
}

TimePoint Profile::Floor(int count, Duration d) const {
  TimePoint floor = now_;
  if (count >= static_cast<int>(floors_.size())) return floor;
  const auto& row = floors_[count];
  for (int c = 0, end = Octave(d); c < end; ++c) floor = std::max(floor, row[c]);
  return floor;
}

void Profile::RaiseFloors(int count, Duration d, TimePoint start) {
  const int c = Octave(d);
  for (size_t k = count; k < floors_.size(); ++k) {
    if (floors_[k][c] >= start) break;  // rows above are at least as high
    floors_[k][c] = start;
  }
}

void Profile::Reanchor(TimePoint now) {
  assert(now >= now_);
  now_ = now;
  // Tails in the past all mean "free from now"; re-key them so that they stay
  // ordered by index among themselves.
  popped_.clear();
  while (!tail_heap_.empty() && tail_heap_.front().tail < now) {
    const TailEntry e = tail_heap_.front();
    PopTail();
    if (tail_[e.gpu] == e.tail) popped_.push_back(e);
  }
  for (const TailEntry& e : popped_) SetTail(e.gpu, now);
  max_open_dirty_ = true;
}

Duration Profile::MaxOpenWindow() {
  if (max_open_dirty_) {
    max_open_ = Duration::zero();
    for (int g : free_now_) {
      if (open_end_[g] <= now_) continue;
      max_open_ =
          std::max(max_open_, open_end_[g] == kNever ? Duration::max() : open_end_[g] - now_);
    }
    max_open_dirty_ = false;
  }
  return max_open_;
}

Profile::AtNow Profile::FitAtNow(int count, const std::vector<int>& gpus, Duration d,
                                 std::vector<int>* chosen) {
  // GPU g's free stretch at now is [now, open_end_[g]) if it is free now.
  auto fits = [&](int g) { return is_free_now_[g] && open_end_[g] - now_ >= d; };
  chosen->clear();
  if (gpus.empty()) {
    if (d > MaxOpenWindow()) return AtNow::kTooLong;
    for (int g : free_now_) {
      if (!fits(g)) continue;
      chosen->push_back(g);
      if (static_cast<int>(chosen->size()) == count) return AtNow::kFits;
    }
    return AtNow::kMaybe;
  }
  const auto n = std::count_if(gpus.begin(), gpus.end(), fits);
  if (n == 0) return AtNow::kTooLong;
  if (n < static_cast<long>(gpus.size())) return AtNow::kMaybe;
  *chosen = gpus;
  return AtNow::kFits;
}

TimePoint Profile::Probe(int count, const std::vector<int>& gpus, Duration d) {
  TimePoint t;
  if (gpus.empty()) {
    t = Search(count, d, /*named=*/false);
    for (const TailEntry& e : popped_) PushTail(e.tail, e.gpu);  // put the heap back
  } else {
    StartNamed(gpus);
    t = Search(static_cast<int>(gpus.size()), d, /*named=*/true);
  }
  return t;
}

TimePoint Profile::OpenUntil() {
  const Duration w = MaxOpenWindow();
  return w == Duration::max() ? kNever : now_ + w;
}

Duration Profile::Crossing(TimePoint w) {
  if (MinTail() < w) return Duration::max();
  Duration longest = Duration::zero();
  hole_classes_.ForEachFrom(0, [&](int c) {
    // A hole of class c is shorter than `bound`, so one that crosses w starts
    // after w - bound (and, being shorter than w - now, after now).
    const HoleSet& set = holes_[c];
    const Duration bound = LengthClassBound(c);
    auto it = w - now_ > bound ? set.lower_bound(Hole{w - bound, w, -1}) : set.begin();
    for (; it != set.end() && it->start < w; ++it) {
      if (it->end > w) longest = std::max(longest, it->end - std::max(it->start, now_));
    }
  });
  return longest;
}

TimePoint Profile::MinTail() {
  Window w;
  return PeekTail(/*named=*/false, &w) ? w.lo : kNever;
}

Duration Profile::LongestRunBefore(TimePoint w) const {
  Duration best = Duration::zero();
  for (TimePoint t : tail_) {
    if (t < w) best = std::max(best, w - std::max(t, now_));
  }
  for (int c = kLengthClasses - 1; c >= 0 && LengthClassBound(c) > best; --c) {
    for (const Hole& h : holes_[c]) {
      if (h.start >= w) break;
      if (h.end > now_) best = std::max(best, std::min(h.end, w) - std::max(h.start, now_));
    }
  }
  return best;
}

void Profile::PushTail(TimePoint tail, int gpu) {
  tail_heap_.push_back({tail, gpu});
  std::push_heap(tail_heap_.begin(), tail_heap_.end(), LaterTail());
}

void Profile::PopTail() {
  std::pop_heap(tail_heap_.begin(), tail_heap_.end(), LaterTail());
  tail_heap_.pop_back();
}

void Profile::SetTail(int gpu, TimePoint tail) {
  tail_[gpu] = tail;
  PushTail(tail, gpu);
  // Entries made stale by named tasks pile up; drop them now and then.
  if (tail_heap_.size() > 2 * tail_.size() + 64) {
    tail_heap_.clear();
    for (size_t g = 0; g < tail_.size(); ++g) tail_heap_.push_back({tail_[g], static_cast<int>(g)});
    std::make_heap(tail_heap_.begin(), tail_heap_.end(), LaterTail());
  }
}

void Profile::AddHole(int gpu, TimePoint start, TimePoint end) {
  assert(start < end);
  const int c = LengthClass(end - start);
  holes_[c].insert({start, end, gpu});
  hole_classes_.Add(c);
}

// ---- Window streams

void Profile::StartHoles(Duration d, bool named, TimePoint floor) {
  search_d_ = d;
  search_named_ = named;
  cursors_.clear();
  hole_classes_.ForEachFrom(LengthClass(d), [&](int c) {
    // A hole of this class that starts before floor + d - bound ends before
    // floor + d, too early to be open at `floor`.
    const HoleSet& set = holes_[c];
    const TimePoint needed_end = SaturatingAdd(floor, d);
    const Duration bound = LengthClassBound(c);
    auto it = set.begin();
    if (floor > now_ && needed_end - now_ > bound) {
      const TimePoint first = needed_end - bound;
      it = set.lower_bound({first, first, -1});
    }
    Cursor cursor{c, it, kNever};
    if (Settle(cursor)) cursors_.push_back(cursor);
  });
  std::make_heap(cursors_.begin(), cursors_.end(), LaterLo());
}

bool Profile::Settle(Cursor& c) {
  const HoleSet& set = holes_[c.cls];
  // Skip holes too short from now on, or of other GPUs.
  while (c.it != set.end() && (c.it->end - std::max(c.it->start, now_) < search_d_ ||
                               (search_named_ && mark_[c.it->gpu] != stamp_))) {
    ++c.it;
  }
  if (c.it == set.end()) return false;
  // A hole ends where a reservation starts, and those start at or after now
  // (Reanchor's precondition).
  assert(c.it->end > now_);
  c.lo = std::max(c.it->start, now_);
  return true;
}

bool Profile::PeekHole(Window* w) {
  if (cursors_.empty()) return false;
  const Cursor& c = cursors_.front();
  *w = {c.lo, c.it->end - search_d_, c.it->gpu, c.cls, c.it};
  return true;
}

void Profile::TakeHole() {
  assert(!cursors_.empty());
  std::pop_heap(cursors_.begin(), cursors_.end(), LaterLo());
  Cursor& c = cursors_.back();
  ++c.it;
  if (Settle(c)) {
    std::push_heap(cursors_.begin(), cursors_.end(), LaterLo());
  } else {
    cursors_.pop_back();
  }
}

bool Profile::PeekTail(bool named, Window* w) {
  if (named) {
    if (named_next_ == named_tails_.size()) return false;
    *w = named_tails_[named_next_];
    return true;
  }
  while (!tail_heap_.empty()) {
    const TailEntry& e = tail_heap_.front();
    if (tail_[e.gpu] == e.tail) {
      *w = {std::max(e.tail, now_), kNever, e.gpu, -1, {}};
      return true;
    }
    PopTail();  // stale
  }
  return false;
}

void Profile::TakeTail(bool named) {
  if (named) {
    ++named_next_;
    return;
  }
  popped_.push_back(tail_heap_.front());
  PopTail();
}

// ---- Search and placement

TimePoint Profile::Search(int need, Duration d, bool named) {
  assert(need >= 1 && d > Duration::zero());
  StartHoles(d, named, named || need == 1 ? now_ : Floor(need, d));
  popped_.clear();
  pulled_.clear();
  open_hi_.clear();
  Window tail;
  Window hole;
  TimePoint t;
  for (;;) {
    const bool has_tail = PeekTail(named, &tail);
    const bool has_hole = PeekHole(&hole);
    assert(has_tail || has_hole);
    Window w;
    if (has_hole && (!has_tail || hole.lo < tail.lo)) {
      w = hole;
      TakeHole();
    } else {
      w = tail;
      TakeTail(named);
    }
    pulled_.push_back(w);
    open_hi_.push_back(w.hi);
    std::push_heap(open_hi_.begin(), open_hi_.end(), std::greater<>());
    while (open_hi_.front() < w.lo) {
      std::pop_heap(open_hi_.begin(), open_hi_.end(), std::greater<>());
      open_hi_.pop_back();
    }
    if (open_hi_.size() >= static_cast<size_t>(need)) {
      t = w.lo;
      break;
    }
  }

  // Candidates: every window open at t. Of the tails that begin at t, which
  // come in index order, the lowest `need` suffice.
  int group = 0;
  candidates_.clear();
  auto add_tail = [&](const Window& w) {
    candidates_.push_back(w);
    if (w.lo == t) ++group;
  };
  for (const Window& w : pulled_) {
    if (w.cls < 0) {
      add_tail(w);  // open for ever
    } else if (w.hi >= t) {
      candidates_.push_back(w);
    }
  }
  while (PeekHole(&hole) && hole.lo == t) {
    candidates_.push_back(hole);
    TakeHole();
  }
  while ((named || group < need) && PeekTail(named, &tail) && tail.lo == t) {
    TakeTail(named);
    add_tail(tail);
  }
  return t;
}

TimePoint Profile::PlaceCount(int count, Duration d, std::vector<int>* chosen) {
  assert(count >= 1 && count <= gpu_count());
  const TimePoint t = Search(count, d, /*named=*/false);
  assert(candidates_.size() >= static_cast<size_t>(count));
  std::partial_sort(candidates_.begin(), candidates_.begin() + count, candidates_.end(),
                    [](const Window& a, const Window& b) { return a.gpu < b.gpu; });
  // Tails taken off the heap and not chosen go back.
  for (auto it = candidates_.begin() + count; it != candidates_.end(); ++it) {
    if (it->cls < 0) PushTail(tail_[it->gpu], it->gpu);
  }
  candidates_.resize(count);
  chosen->clear();
  for (const Window& w : candidates_) chosen->push_back(w.gpu);
  std::sort(chosen->begin(), chosen->end());
  Reserve(t, d);
  RaiseFloors(count, d, t);
  return t;
}

void Profile::StartNamed(const std::vector<int>& gpus) {
  assert(!gpus.empty());
  if (++stamp_ == 0) {  // wrapped: forget old marks
    std::fill(mark_.begin(), mark_.end(), 0);
    stamp_ = 1;
  }
  named_tails_.clear();
  named_next_ = 0;
  for (int g : gpus) {
    assert(g >= 0 && g < gpu_count());
    mark_[g] = stamp_;
    named_tails_.push_back({std::max(tail_[g], now_), kNever, g, -1, {}});
  }
  std::sort(named_tails_.begin(), named_tails_.end(),
            [](const Window& a, const Window& b) { return a.lo < b.lo; });
}

TimePoint Profile::PlaceGpus(const std::vector<int>& gpus, Duration d) {
  StartNamed(gpus);
  const TimePoint t = Search(static_cast<int>(gpus.size()), d, /*named=*/true);
  // Each GPU's runs are disjoint, so `need` open windows are one per GPU.
  assert(candidates_.size() == gpus.size());
  Reserve(t, d);
  return t;
}

void Profile::Reserve(TimePoint t, Duration d) {
  const TimePoint end = SaturatingAdd(t, d);
  pending_.clear();
  for (const Window& s : candidates_) {
    const int g = s.gpu;
    if (s.cls >= 0) {
      const Hole h = *s.hole;
      assert(h.gpu == g && std::max(h.start, now_) <= t && end <= h.end);
      holes_[s.cls].erase(s.hole);
      if (holes_[s.cls].empty()) hole_classes_.Remove(s.cls);
      const TimePoint lo = std::max(h.start, now_);
      if (lo < t) pending_.push_back({lo, t, g});
      if (end < h.end) pending_.push_back({end, h.end, g});
    } else {
      const TimePoint lo = std::max(tail_[g], now_);
      assert(lo <= t);
      if (lo < t) pending_.push_back({lo, t, g});
      SetTail(g, end);
    }
    if (t < open_end_[g]) {
      if (t == now_) --free_open_;
      open_end_[g] = t;
      max_open_dirty_ = true;
    }
  }
  for (const Hole& h : pending_) AddHole(h.gpu, h.start, h.end);
}

}  // namespace gpuhub::sched::detail
