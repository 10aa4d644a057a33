#include "server/accounts/accounts.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "server/accounts/password.hpp"

namespace gpuhub::accounts {
namespace {

class AccountsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(InitCrypto().ok());
    char tmpl[] = "/tmp/gpuhub-accounts-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    std::filesystem::create_directories(dir_ / "avatars");
    std::ofstream(dir_ / "avatars" / "fox.svg") << "<svg/>";
    Reopen();
  }
  void TearDown() override {
    accounts_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Reopen() {
    accounts_.reset();
    store_.reset();
    auto s = store::OpenSqliteStore((dir_ / "db").string());
    ASSERT_TRUE(s.ok()) << s.error().message;
    store_ = std::move(s).value();
    auto a = Accounts::Open(*store_,
                            TokenCodec(std::string(32, 's'), clock_, std::chrono::hours(1)), clock_,
                            {.photos_dir = (dir_ / "photos").string(),
                             .avatars_dir = (dir_ / "avatars").string(),
                             .login_max_failures = 2,
                             .login_window = std::chrono::seconds(60)});
    ASSERT_TRUE(a.ok()) << a.error().message;
    accounts_ = std::move(a).value();
  }
  Principal Auth(const std::string& token) {
    auto p = accounts_->Authenticate("Bearer " + token);
    EXPECT_TRUE(std::holds_alternative<Principal>(p));
    return std::get<Principal>(p);
  }
  TokenError AuthError(const std::string& header) {
    auto p = accounts_->Authenticate(header);
    EXPECT_TRUE(std::holds_alternative<TokenError>(p));
    return std::holds_alternative<TokenError>(p) ? std::get<TokenError>(p) : TokenError::kMissing;
  }

  std::filesystem::path dir_;
  ManualClock clock_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<Accounts> accounts_;
};

TEST_F(AccountsTest, FirstStartCreatesAdminWithGeneratedPasswordFile) {
  std::string file = (dir_ / "initial-admin-password").string();
  ASSERT_TRUE(accounts_->EnsureAdmin(std::nullopt, file).ok());
  std::ifstream in(file);
  std::string password;
  in >> password;
  EXPECT_EQ(password.size(), 24u);
  EXPECT_TRUE(accounts_->Login("admin", password).ok());
  // A second start changes nothing.
  ASSERT_TRUE(accounts_->EnsureAdmin(std::string("other-password"), file).ok());
  EXPECT_FALSE(accounts_->Login("admin", "other-password").ok());
}

TEST_F(AccountsTest, LoginErrorsAndTokens) {
  ASSERT_TRUE(accounts_->Register({.account = "alice", .password = "password1"}).ok());
  EXPECT_EQ(accounts_->Login("bob", "password1").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(accounts_->Login("alice", "wrong-pass").error().message, "Wrong password");
  auto token = accounts_->Login("alice", "password1");
  ASSERT_TRUE(token.ok());
  Principal p = Auth(*token);
  EXPECT_EQ(p.account, "alice");
  EXPECT_EQ(p.role, "user");
  EXPECT_EQ(AuthError(""), TokenError::kMissing);
  EXPECT_EQ(AuthError("Bearer nonsense"), TokenError::kInvalid);
}

TEST_F(AccountsTest, FailedLoginsAreLimited) {
  ASSERT_TRUE(accounts_->Register({.account = "alice", .password = "password1"}).ok());
  EXPECT_FALSE(accounts_->LoginRetryAfter("alice"));
  (void)accounts_->Login("alice", "wrong-pass");
  (void)accounts_->Login("alice", "wrong-pass");
  EXPECT_TRUE(accounts_->LoginRetryAfter("alice"));
  clock_.Advance(std::chrono::seconds(61));
  EXPECT_FALSE(accounts_->LoginRetryAfter("alice"));
}

TEST_F(AccountsTest, LogoutRevokesDurably) {
  ASSERT_TRUE(accounts_->Register({.account = "alice", .password = "password1"}).ok());
  std::string token = accounts_->Login("alice", "password1").value();
  Principal p = Auth(token);
  std::string fresh = accounts_->Refresh(p);
  ASSERT_TRUE(accounts_->Logout(p).ok());
  EXPECT_EQ(AuthError(token), TokenError::kInvalid);
  Auth(fresh);  // refresh tokens are independent
  Reopen();
  EXPECT_EQ(AuthError(token), TokenError::kInvalid);
  Auth(fresh);
}

TEST_F(AccountsTest, LogoutTakesEffectAtOnceForARememberedToken) {
  ASSERT_TRUE(accounts_->Register({.account = "alice", .password = "password1"}).ok());
  std::string token = accounts_->Login("alice", "password1").value();
  Principal p = Auth(token);
  for (int i = 0; i < 3; ++i) Auth(token);  // verified once, then remembered
  std::string fresh = accounts_->Refresh(p);
  Auth(fresh);
  ASSERT_TRUE(accounts_->Logout(p).ok());
  EXPECT_EQ(AuthError(token), TokenError::kInvalid);
  EXPECT_EQ(AuthError("Bearer " + token), TokenError::kInvalid);
  Auth(fresh);
}

TEST_F(AccountsTest, RememberedTokenExpiresWithTheClock) {
  ASSERT_TRUE(accounts_->Register({.account = "alice", .password = "password1"}).ok());
  std::string token = accounts_->Login("alice", "password1").value();
  Principal p = Auth(token);
  ASSERT_NE(p.user, nullptr);
  EXPECT_EQ(p.user->account, "alice");
  clock_.Advance(std::chrono::hours(1) - std::chrono::seconds(1));
  Auth(token);
  clock_.Advance(std::chrono::seconds(1));
  EXPECT_EQ(AuthError("Bearer " + token), TokenError::kExpired);
  EXPECT_EQ(AuthError("Bearer " + token), TokenError::kExpired);
}

TEST_F(AccountsTest, PrincipalCarriesTheCurrentRecord) {
  ASSERT_TRUE(accounts_->Register({.account = "alice", .password = "password1"}).ok());
  std::string token = accounts_->Login("alice", "password1").value();
  Principal before = Auth(token);
  ProfileChange change;
  change.nickname = {true, std::string("Al")};
  ASSERT_TRUE(accounts_->UpdateProfile(before.user_id, change).ok());
  Principal after = Auth(token);  // same (remembered) token, new record
  EXPECT_EQ(before.user->nickname, "alice");
  EXPECT_EQ(after.user->nickname, "Al");
  EXPECT_EQ(accounts_->GetUser(before.user_id)->nickname, "Al");
  EXPECT_EQ(accounts_->GetUser(12345), nullptr);
}

TEST_F(AccountsTest, DeletedUsersTokenIsUnknownUser) {
  ASSERT_TRUE(
      accounts_->Register({.account = "admin", .password = "password1", .role = "admin"}).ok());
  ASSERT_TRUE(accounts_->Register({.account = "alice", .password = "password1"}).ok());
  std::string token = accounts_->Login("alice", "password1").value();
  Auth(token);  // remembered by now
  ASSERT_TRUE(accounts_->DeleteUser("alice").ok());
  EXPECT_EQ(AuthError(token), TokenError::kUnknownUser);
  // Re-creating the account gets a new id: the old token stays dead.
  ASSERT_TRUE(accounts_->Register({.account = "alice", .password = "password1"}).ok());
  EXPECT_EQ(AuthError(token), TokenError::kUnknownUser);
  EXPECT_EQ(accounts_->DeleteUser("nobody").error().code, ErrorCode::kNotFound);
}

TEST_F(AccountsTest, LastAdminCannotBeDeleted) {
  ASSERT_TRUE(
      accounts_->Register({.account = "admin", .password = "password1", .role = "admin"}).ok());
  EXPECT_EQ(accounts_->DeleteUser("admin").error().code, ErrorCode::kConflict);
  ASSERT_TRUE(
      accounts_->Register({.account = "root", .password = "password1", .role = "admin"}).ok());
  EXPECT_TRUE(accounts_->DeleteUser("admin").ok());
  EXPECT_EQ(accounts_->DeleteUser("root").error().code, ErrorCode::kConflict);
}

TEST_F(AccountsTest, DuplicateAccountConflicts) {
  ASSERT_TRUE(accounts_->Register({.account = "alice", .password = "password1"}).ok());
  auto again = accounts_->Register({.account = "alice", .password = "password2"});
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().message, "Account already exists");
}

TEST_F(AccountsTest, PasswordsChangeAndReset) {
  auto alice = accounts_->Register({.account = "alice", .password = "password1"}).value();
  EXPECT_EQ(accounts_->ChangePassword(alice.id, "bad-password", "password2").error().code,
            ErrorCode::kUnauthenticated);
  ASSERT_TRUE(accounts_->ChangePassword(alice.id, "password1", "password2").ok());
  EXPECT_TRUE(accounts_->Login("alice", "password2").ok());
  ASSERT_TRUE(accounts_->ResetPassword("alice", "password3").ok());
  EXPECT_FALSE(accounts_->Login("alice", "password2").ok());
  Reopen();
  EXPECT_TRUE(accounts_->Login("alice", "password3").ok());
}

TEST_F(AccountsTest, ProfilePatchSetsAndClears) {
  auto alice = accounts_->Register({.account = "alice", .password = "password1"}).value();
  EXPECT_EQ(alice.nickname, "alice");
  ProfileChange set;
  set.nickname = {true, "Alice"};
  set.email = {true, "a@example.org"};
  set.phone = {true, "+1 555-0100"};
  auto u = accounts_->UpdateProfile(alice.id, set).value();
  EXPECT_EQ(u.email, "a@example.org");
  ProfileChange clear;
  clear.email = {true, std::nullopt};
  u = accounts_->UpdateProfile(alice.id, clear).value();
  EXPECT_EQ(u.email, std::nullopt);
  EXPECT_EQ(u.phone, "+1 555-0100");
  EXPECT_EQ(u.nickname, "Alice");
  Reopen();
  EXPECT_EQ(accounts_->FindUser(alice.id), u);
}

TEST_F(AccountsTest, PhotosReplaceOldFiles) {
  auto alice = accounts_->Register({.account = "alice", .password = "password1"}).value();
  auto u = accounts_->SetUploadedPhoto(alice.id, "\x89PNG....", "image/png").value();
  auto first = accounts_->FindPhoto(alice.id).value();
  EXPECT_TRUE(std::filesystem::exists(first.path));
  EXPECT_EQ(first.content_type, "image/png");
  auto v1 = u.photo->version;
  u = accounts_->SetPresetPhoto(alice.id, "fox").value();
  EXPECT_NE(u.photo->version, v1);
  EXPECT_FALSE(std::filesystem::exists(first.path));
  EXPECT_EQ(accounts_->FindPhoto(alice.id)->content_type, "image/svg+xml");
  EXPECT_EQ(accounts_->SetPresetPhoto(alice.id, "unicorn").error().code,
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(accounts_->Avatars(), std::vector<std::string>{"fox"});
}

}  // namespace
}  // namespace gpuhub::accounts
