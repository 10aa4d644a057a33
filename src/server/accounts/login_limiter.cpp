#include "server/accounts/login_limiter.hpp"

namespace gpuhub::accounts {

LoginLimiter::LoginLimiter(const Clock& clock, int max_failures, std::chrono::milliseconds window)
    : clock_(clock), max_failures_(static_cast<size_t>(max_failures)), window_(window) {}

void LoginLimiter::Expire(std::deque<TimePoint>& failures, TimePoint now) const {
  while (!failures.empty() && failures.front() + window_ <= now) failures.pop_front();
}

std::optional<std::chrono::seconds> LoginLimiter::RetryAfter(const std::string& account) {
  std::lock_guard lock(mu_);
  auto it = failures_.find(account);
  if (it == failures_.end()) return std::nullopt;
  TimePoint now = clock_.Now();
  Expire(it->second, now);
  if (it->second.size() < max_failures_) {
    if (it->second.empty()) failures_.erase(it);
    return std::nullopt;
  }
  auto wait = it->second[it->second.size() - max_failures_] + window_ - now;
  auto secs = std::chrono::ceil<std::chrono::seconds>(wait);
  return std::max(secs, std::chrono::seconds(1));
}

void LoginLimiter::RecordFailure(const std::string& account) {
  std::lock_guard lock(mu_);
  TimePoint now = clock_.Now();
  auto& failures = failures_[account];
  Expire(failures, now);
  failures.push_back(now);
  // Keep memory bounded: only the newest max_failures_ matter for the limit.
  while (failures.size() > max_failures_) failures.pop_front();
}

}  // namespace gpuhub::accounts
