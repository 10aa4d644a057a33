#include "server/accounts/token.hpp"

#include <gtest/gtest.h>
#include <sodium.h>
#include <sys/stat.h>

#include <filesystem>
#include <nlohmann/json.hpp>

namespace gpuhub::accounts {
namespace {

class TokenTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_GE(sodium_init(), 0); }
  ManualClock clock_;
  TokenCodec codec_{std::string(32, 'k'), clock_, std::chrono::hours(24)};
};

TEST_F(TokenTest, IssueThenVerifyRoundTrips) {
  std::string token = codec_.Issue(7, "alice", "admin");
  auto v = codec_.Verify(token);
  ASSERT_TRUE(std::holds_alternative<TokenClaims>(v));
  const auto& c = std::get<TokenClaims>(v);
  EXPECT_EQ(c.user_id, 7);
  EXPECT_EQ(c.account, "alice");
  EXPECT_EQ(c.role, "admin");
  EXPECT_EQ(c.expires_at - c.issued_at, std::chrono::hours(24));
  EXPECT_EQ(c.jti.size(), 32u);
}

TEST_F(TokenTest, ClaimsAndHeaderAreStandardJwt) {
  std::string token = codec_.Issue(7, "alice", "user");
  auto header = Base64UrlDecode(token.substr(0, token.find('.')));
  ASSERT_TRUE(header.ok());
  EXPECT_EQ(nlohmann::json::parse(*header)["alg"], "HS256");
  size_t d1 = token.find('.'), d2 = token.find('.', d1 + 1);
  auto payload = nlohmann::json::parse(Base64UrlDecode(token.substr(d1 + 1, d2 - d1 - 1)).value());
  for (const char* k : {"sub", "account", "role", "iat", "exp", "jti"}) {
    EXPECT_TRUE(payload.contains(k)) << k;
  }
}

TEST_F(TokenTest, JtiIsUniquePerToken) {
  EXPECT_NE(codec_.Issue(1, "a", "user"), codec_.Issue(1, "a", "user"));
}

TEST_F(TokenTest, ExpiredAfterLifetime) {
  std::string token = codec_.Issue(1, "a", "user");
  clock_.Advance(std::chrono::hours(24) - std::chrono::seconds(1));
  EXPECT_TRUE(std::holds_alternative<TokenClaims>(codec_.Verify(token)));
  clock_.Advance(std::chrono::seconds(1));
  auto v = codec_.Verify(token);
  ASSERT_TRUE(std::holds_alternative<TokenError>(v));
  EXPECT_EQ(std::get<TokenError>(v), TokenError::kExpired);
}

TEST_F(TokenTest, TamperedOrForeignTokensAreInvalid) {
  std::string token = codec_.Issue(1, "a", "user");
  std::string tampered = token;
  tampered[tampered.size() - 2] = tampered[tampered.size() - 2] == 'A' ? 'B' : 'A';
  TokenCodec other(std::string(32, 'x'), clock_, std::chrono::hours(1));
  // Payload swapped for another user's, signature kept.
  std::string forged = codec_.Issue(2, "root", "admin");
  size_t d1 = token.find('.'), d2 = token.find('.', d1 + 1);
  size_t f1 = forged.find('.'), f2 = forged.find('.', f1 + 1);
  std::string swapped =
      token.substr(0, d1 + 1) + forged.substr(f1 + 1, f2 - f1 - 1) + token.substr(d2);
  for (const std::string& bad :
       {tampered, other.Issue(1, "a", "user"), swapped, std::string("garbage"),
        std::string("a.b.c"), std::string("..."), token + ".x", std::string("")}) {
    auto v = codec_.Verify(bad);
    ASSERT_TRUE(std::holds_alternative<TokenError>(v)) << bad;
    EXPECT_EQ(std::get<TokenError>(v), TokenError::kInvalid) << bad;
  }
}

TEST_F(TokenTest, ErrorMessagesAreTheContractsExactWords) {
  EXPECT_EQ(TokenErrorMessage(TokenError::kMissing), "Token Not Found");
  EXPECT_EQ(TokenErrorMessage(TokenError::kInvalid), "Invalid token");
  EXPECT_EQ(TokenErrorMessage(TokenError::kExpired), "Token expired");
  EXPECT_EQ(TokenErrorMessage(TokenError::kUnknownUser), "User not include");
}

TEST(TokenFromHeader, BearerOrRaw) {
  EXPECT_EQ(TokenFromHeader("Bearer abc"), "abc");
  EXPECT_EQ(TokenFromHeader("bearer  abc "), "abc");
  EXPECT_EQ(TokenFromHeader("abc"), "abc");
  EXPECT_EQ(TokenFromHeader("   "), "");
  EXPECT_EQ(TokenFromHeader(""), "");
}

TEST(Secret, CreatedOnceWithMode0600) {
  ASSERT_GE(sodium_init(), 0);
  char tmpl[] = "/tmp/gpuhub-secret-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string path = std::string(tmpl) + "/secret";
  auto a = LoadOrCreateSecret(path);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->size(), 32u);
  auto b = LoadOrCreateSecret(path);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(*a, *b);
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::filesystem::remove_all(tmpl);
}

}  // namespace
}  // namespace gpuhub::accounts
