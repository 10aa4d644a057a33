#include "server/accounts/login_limiter.hpp"

#include <gtest/gtest.h>

namespace gpuhub::accounts {
namespace {

using std::chrono::seconds;

TEST(LoginLimiter, RefusesAfterMaxFailuresInWindow) {
  ManualClock clock;
  LoginLimiter limiter(clock, 3, seconds(60));
  for (int i = 0; i < 3; ++i) {
    EXPECT_FALSE(limiter.RetryAfter("alice"));
    limiter.RecordFailure("alice");
    clock.Advance(seconds(10));
  }
  // Failures at t=0,10,20; now t=30: the first leaves the window at t=60.
  auto wait = limiter.RetryAfter("alice");
  ASSERT_TRUE(wait);
  EXPECT_EQ(*wait, seconds(30));
  EXPECT_FALSE(limiter.RetryAfter("bob"));  // per account
  clock.Advance(seconds(30));
  EXPECT_FALSE(limiter.RetryAfter("alice"));
  limiter.RecordFailure("alice");  // t=60: failures 10,20,60
  ASSERT_TRUE(limiter.RetryAfter("alice"));
  EXPECT_EQ(*limiter.RetryAfter("alice"), seconds(10));
}

TEST(LoginLimiter, RetryAfterRoundsUpToAtLeastOneSecond) {
  ManualClock clock;
  LoginLimiter limiter(clock, 1, std::chrono::milliseconds(1500));
  limiter.RecordFailure("a");
  EXPECT_EQ(*limiter.RetryAfter("a"), seconds(2));
  clock.Advance(std::chrono::milliseconds(1400));
  EXPECT_EQ(*limiter.RetryAfter("a"), seconds(1));
  clock.Advance(std::chrono::milliseconds(100));
  EXPECT_FALSE(limiter.RetryAfter("a"));
}

}  // namespace
}  // namespace gpuhub::accounts
