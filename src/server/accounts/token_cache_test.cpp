#include "server/accounts/token_cache.hpp"

#include <gtest/gtest.h>
#include <sodium.h>

namespace gpuhub::accounts {
namespace {

class VerifiedTokensTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_GE(sodium_init(), 0); }
  ManualClock clock_;
  TokenCodec codec_{std::string(32, 'k'), clock_, std::chrono::hours(1)};
};

TEST_F(VerifiedTokensTest, AnswersAsVerifyAndRemembersOnlyAcceptedTokens) {
  VerifiedTokens tokens(codec_, clock_);
  std::string token = codec_.Issue(7, "alice", "admin");
  for (int i = 0; i < 3; ++i) {
    auto v = tokens.Verify(token);
    ASSERT_TRUE(std::holds_alternative<TokenClaims>(v));
    const auto& c = std::get<TokenClaims>(v);
    auto direct = std::get<TokenClaims>(codec_.Verify(token));
    EXPECT_EQ(c.user_id, 7);
    EXPECT_EQ(c.account, "alice");
    EXPECT_EQ(c.role, "admin");
    EXPECT_EQ(c.jti, direct.jti);
    EXPECT_EQ(c.expires_at, direct.expires_at);
  }
  EXPECT_EQ(tokens.size(), 1u);
  std::string tampered = token;
  tampered.back() = tampered.back() == 'A' ? 'B' : 'A';
  for (const std::string& bad : {tampered, token + "x", token.substr(1), std::string("a.b.c")}) {
    auto v = tokens.Verify(bad);
    ASSERT_TRUE(std::holds_alternative<TokenError>(v)) << bad;
    EXPECT_EQ(std::get<TokenError>(v), TokenError::kInvalid) << bad;
  }
  EXPECT_EQ(tokens.size(), 1u);
}

TEST_F(VerifiedTokensTest, RememberedTokenExpiresOnTime) {
  VerifiedTokens tokens(codec_, clock_);
  std::string token = codec_.Issue(1, "a", "user");
  ASSERT_TRUE(std::holds_alternative<TokenClaims>(tokens.Verify(token)));
  clock_.Advance(std::chrono::hours(1) - std::chrono::seconds(1));
  ASSERT_TRUE(std::holds_alternative<TokenClaims>(tokens.Verify(token)));
  clock_.Advance(std::chrono::seconds(1));
  auto v = tokens.Verify(token);
  ASSERT_TRUE(std::holds_alternative<TokenError>(v));
  EXPECT_EQ(std::get<TokenError>(v), TokenError::kExpired);
  EXPECT_EQ(tokens.size(), 0u);  // forgotten
  v = tokens.Verify(token);      // and still expired through the full check
  ASSERT_TRUE(std::holds_alternative<TokenError>(v));
  EXPECT_EQ(std::get<TokenError>(v), TokenError::kExpired);
}

TEST_F(VerifiedTokensTest, StaysWithinItsCapacity) {
  VerifiedTokens tokens(codec_, clock_, 64);
  std::vector<std::string> issued;
  for (int i = 0; i < 1000; ++i) {
    issued.push_back(codec_.Issue(i, "u" + std::to_string(i), "user"));
    ASSERT_TRUE(std::holds_alternative<TokenClaims>(tokens.Verify(issued.back())));
    ASSERT_LE(tokens.size(), 64u);
  }
  // Dropped tokens are verified again, not refused.
  for (int i = 0; i < 1000; i += 97) {
    auto v = tokens.Verify(issued[static_cast<size_t>(i)]);
    ASSERT_TRUE(std::holds_alternative<TokenClaims>(v));
    EXPECT_EQ(std::get<TokenClaims>(v).user_id, i);
  }
}

TEST_F(VerifiedTokensTest, FullCacheDropsExpiredTokensFirst) {
  VerifiedTokens tokens(codec_, clock_, 8 * 4);  // 4 per shard
  for (int i = 0; i < 200; ++i) (void)tokens.Verify(codec_.Issue(i, "old", "user"));
  clock_.Advance(std::chrono::hours(2));  // all of those expired
  std::vector<std::string> fresh;
  for (int i = 0; i < 8; ++i) {
    fresh.push_back(codec_.Issue(i, "new", "user"));
    ASSERT_TRUE(std::holds_alternative<TokenClaims>(tokens.Verify(fresh.back())));
  }
  EXPECT_LE(tokens.size(), 32u);
  for (const auto& t : fresh) EXPECT_TRUE(std::holds_alternative<TokenClaims>(tokens.Verify(t)));
}

}  // namespace
}  // namespace gpuhub::accounts
