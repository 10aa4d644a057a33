#include "sched/profile.hpp"

#include <algorithm>
#include <bit>
#include <cassert>

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

namespace {

// Orders for std::*_heap, which keep the greatest element in front.
struct LaterTail {
  template <typename E>
  bool operator()(const E& a, const E& b) const {
    return a.tail > b.tail || (a.tail == b.tail && a.gpu > b.gpu);
  }
};
struct LaterHi {
  template <typename W>
  bool operator()(const W& a, const W& b) const {
    return a.hi > b.hi;
  }
};

}  // namespace

void Profile::Reset(TimePoint now, const std::vector<TimePoint>& base,
                    const std::vector<char>& held) {
  assert(base.size() == held.size());
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
  held_ = held;
  unheld_.clear();
  for (size_t g = 0; g < n; ++g) {
    if (!held_[g]) unheld_.push_back(static_cast<int>(g));
  }
  open_end_.assign(n, kNever);
  free_open_ = static_cast<int>(unheld_.size());
  max_open_dirty_ = true;
  mark_.assign(n, 0);
  stamp_ = 0;
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
    for (int g : unheld_) {
      if (held_[g] || open_end_[g] <= now_) continue;
      max_open_ =
          std::max(max_open_, open_end_[g] == kNever ? Duration::max() : open_end_[g] - now_);
    }
    max_open_dirty_ = false;
  }
  return max_open_;
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

void Profile::StartHoles(Duration d, bool named) {
  search_d_ = d;
  search_named_ = named;
  cursors_.clear();
  hole_classes_.ForEachFrom(LengthClass(d), [&](int c) {
    cursors_.push_back({c, holes_[c].begin(), kNever});
    Settle(cursors_.back());
  });
}

void Profile::Settle(Cursor& c) {
  const HoleSet& set = holes_[c.cls];
  // Skip holes too short from now on, or of other GPUs.
  while (c.it != set.end() && (c.it->end - std::max(c.it->start, now_) < search_d_ ||
                               (search_named_ && mark_[c.it->gpu] != stamp_))) {
    ++c.it;
  }
  if (c.it == set.end()) {
    c.lo = kNever;
    return;
  }
  // A hole ends where a reservation starts, and those start at or after now
  // (Reanchor's precondition).
  assert(c.it->end > now_);
  c.lo = std::max(c.it->start, now_);
}

bool Profile::PeekHole(Window* w) {
  picked_cursor_ = -1;
  TimePoint best = kNever;
  for (size_t i = 0; i < cursors_.size(); ++i) {
    if (cursors_[i].lo < best) {
      best = cursors_[i].lo;
      picked_cursor_ = static_cast<int>(i);
    }
  }
  if (picked_cursor_ < 0) return false;
  const Cursor& c = cursors_[picked_cursor_];
  *w = {c.lo, c.it->end - search_d_, c.it->gpu, c.cls, c.it};
  return true;
}

void Profile::TakeHole() {
  assert(picked_cursor_ >= 0);
  Cursor& c = cursors_[picked_cursor_];
  ++c.it;
  Settle(c);
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
  StartHoles(d, named);
  popped_.clear();
  open_.clear();
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
    open_.push_back(w);
    std::push_heap(open_.begin(), open_.end(), LaterHi());
    while (open_.front().hi < w.lo) {
      std::pop_heap(open_.begin(), open_.end(), LaterHi());
      open_.pop_back();
    }
    if (open_.size() >= static_cast<size_t>(need)) {
      t = w.lo;
      break;
    }
  }

  // Candidates: every window open at t. Of the tails that begin at t, which
  // come in index order, the lowest `need` suffice (at now: the lowest `need`
  // not held, and the held ones among them).
  const bool at_now = t == now_;
  int group_unheld = 0;
  candidates_.clear();
  auto add_tail = [&](const Window& w) {
    candidates_.push_back(w);
    if (w.lo == t && !(at_now && held_[w.gpu])) ++group_unheld;
  };
  for (const Window& w : open_) {
    if (w.cls < 0) {
      add_tail(w);
    } else {
      candidates_.push_back(w);
    }
  }
  while (PeekHole(&hole) && hole.lo == t) {
    candidates_.push_back(hole);
    TakeHole();
  }
  while ((named || group_unheld < need) && PeekTail(named, &tail) && tail.lo == t) {
    TakeTail(named);
    add_tail(tail);
  }
  return t;
}

TimePoint Profile::PlaceCount(int count, Duration d, std::vector<int>* chosen) {
  assert(count >= 1 && count <= gpu_count());
  const TimePoint t = Search(count, d, /*named=*/false);
  const bool at_now = t == now_;
  auto key = [&](const Window& w) { return std::pair(at_now && held_[w.gpu], w.gpu); };
  assert(candidates_.size() >= static_cast<size_t>(count));
  std::partial_sort(candidates_.begin(), candidates_.begin() + count, candidates_.end(),
                    [&](const Window& a, const Window& b) { return key(a) < key(b); });
  // Tails taken off the heap and not chosen go back.
  for (auto it = candidates_.begin() + count; it != candidates_.end(); ++it) {
    if (it->cls < 0) PushTail(tail_[it->gpu], it->gpu);
  }
  candidates_.resize(count);
  chosen->clear();
  for (const Window& w : candidates_) chosen->push_back(w.gpu);
  std::sort(chosen->begin(), chosen->end());
  Reserve(t, d);
  return t;
}

TimePoint Profile::PlaceGpus(const std::vector<int>& gpus, Duration d) {
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
    if (!held_[g] && t < open_end_[g]) {
      if (t == now_) --free_open_;
      open_end_[g] = t;
      max_open_dirty_ = true;
    }
  }
  for (const Hole& h : pending_) AddHole(h.gpu, h.start, h.end);
}

}  // namespace gpuhub::sched::detail
