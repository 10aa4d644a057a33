#include "common/time_util.hpp"

#include <cmath>
#include <cstdio>
#include <ctime>

namespace gpuhub {

std::string FormatIso8601(TimePoint t) {
  std::time_t secs = std::chrono::system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

int64_t ToUnixSeconds(TimePoint t) {
  return std::chrono::duration_cast<std::chrono::seconds>(t.time_since_epoch()).count();
}

TimePoint FromUnixSeconds(int64_t s) { return TimePoint(std::chrono::seconds(s)); }

Result<std::chrono::milliseconds> ParseDuration(std::string_view text,
                                                std::chrono::milliseconds bare_unit) {
  auto invalid = [&] {
    return InvalidArgument("invalid duration \"" + std::string(text.substr(0, 64)) +
                           "\": use a number with units s, m, h or d, like 90m or 1h30m");
  };
  if (text.empty() || text.size() > 64) return invalid();
  double total_ms = 0;
  size_t i = 0;
  bool any_unit = false;
  while (i < text.size()) {
    size_t start = i;
    bool dot = false;
    while (i < text.size() && ((text[i] >= '0' && text[i] <= '9') || (text[i] == '.' && !dot))) {
      dot = dot || text[i] == '.';
      ++i;
    }
    std::string number(text.substr(start, i - start));
    if (number.empty() || number == ".") return invalid();
    double value = std::strtod(number.c_str(), nullptr);
    double unit_ms;
    if (i == text.size()) {
      if (any_unit) return invalid();  // "1h30" is ambiguous
      unit_ms = static_cast<double>(bare_unit.count());
    } else {
      switch (text[i]) {
        case 's':
          unit_ms = 1e3;
          break;
        case 'm':
          unit_ms = 60e3;
          break;
        case 'h':
          unit_ms = 3600e3;
          break;
        case 'd':
          unit_ms = 86400e3;
          break;
        default:
          return invalid();
      }
      ++i;
      any_unit = true;
    }
    total_ms += value * unit_ms;
  }
  if (!std::isfinite(total_ms) || total_ms > 1e15) return invalid();
  return std::chrono::milliseconds(static_cast<int64_t>(std::llround(total_ms)));
}

}  // namespace gpuhub
