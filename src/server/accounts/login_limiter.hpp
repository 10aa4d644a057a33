// LoginLimiter: at most N failed logins per account in any sliding window.
//
// Once an account has N failures inside the window, every attempt is refused
// (right password or not) until the oldest failure leaves the window.
// Thread-safe; time comes from the injected Clock.
#pragma once

#include <chrono>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "common/clock.hpp"

namespace gpuhub::accounts {

class LoginLimiter {
 public:
  LoginLimiter(const Clock& clock, int max_failures, std::chrono::milliseconds window);

  // How long the caller must wait before `account` may try again, rounded up
  // to whole seconds (at least 1), or nullopt when an attempt is allowed now.
  std::optional<std::chrono::seconds> RetryAfter(const std::string& account);

  // Counts one failed attempt for `account`.
  void RecordFailure(const std::string& account);

 private:
  void Expire(std::deque<TimePoint>& failures, TimePoint now) const;

  const Clock& clock_;
  const size_t max_failures_;
  const std::chrono::milliseconds window_;
  std::mutex mu_;
  std::unordered_map<std::string, std::deque<TimePoint>> failures_;  // guarded by mu_
};

}  // namespace gpuhub::accounts
