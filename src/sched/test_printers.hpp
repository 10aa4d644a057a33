// GoogleTest printers for the scheduler's types (tests only).
#pragma once

#include <chrono>
#include <ostream>

#include "sched/scheduler.hpp"

namespace gpuhub::sched {

inline void PrintTo(const Placement& p, std::ostream* os) {
  using std::chrono::duration_cast;
  using std::chrono::milliseconds;
  *os << "{id " << p.id << ", gpus [";
  for (size_t i = 0; i < p.gpus.size(); ++i) *os << (i ? "," : "") << p.gpus[i];
  *os << "], start " << duration_cast<milliseconds>(p.start.time_since_epoch()).count() << " ms, "
      << duration_cast<milliseconds>(p.end - p.start).count() << " ms long}";
}

}  // namespace gpuhub::sched
