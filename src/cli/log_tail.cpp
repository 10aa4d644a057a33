#include "cli/log_tail.hpp"

#include <algorithm>

namespace gpuhub::cli {

LogTail::Update LogTail::Next(std::string_view log) {
  Update u;
  if (log.size() < window_ || seen_.size() < window_) {
    // Not sliding yet (or it started sliding since the last read, which the
    // prefix check covers): the log extends what was seen.
    if (log.starts_with(seen_)) {
      u.text = std::string(log.substr(seen_.size()));
      seen_ = std::string(log);
      return u;
    }
  }
  // The window slid: find the longest suffix of seen_ that starts log.
  for (size_t k = std::min(seen_.size(), log.size()); k > 0; --k) {
    if (std::string_view(seen_).substr(seen_.size() - k) == log.substr(0, k)) {
      u.text = std::string(log.substr(k));
      seen_ = std::string(log);
      return u;
    }
  }
  u.gap = !seen_.empty() || log.size() >= window_;
  u.text = std::string(log);
  seen_ = std::string(log);
  return u;
}

}  // namespace gpuhub::cli
