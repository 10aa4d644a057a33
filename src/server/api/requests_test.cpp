#include "server/api/requests.hpp"

#include <gtest/gtest.h>

namespace gpuhub::api {
namespace {

std::string ErrorOf(const auto& result) {
  return result.ok() ? std::string("<ok>") : result.error().message;
}

TEST(DecodeLogin, ShapeErrors) {
  EXPECT_EQ(ErrorOf(DecodeLogin("{")), "Invalid JSON body");
  EXPECT_EQ(ErrorOf(DecodeLogin("[1]")), "Request body must be a JSON object");
  EXPECT_EQ(ErrorOf(DecodeLogin("")), "Invalid JSON body");
  EXPECT_EQ(ErrorOf(DecodeLogin(R"({"password":"x"})")), "Missing field: account");
  EXPECT_EQ(ErrorOf(DecodeLogin(R"({"account":1,"password":"x"})")),
            "Field account must be a string");
  EXPECT_EQ(ErrorOf(DecodeLogin(R"({"account":"a","password":"x","x":1})")), "Unknown field: x");
  auto ok = DecodeLogin(R"({"account":"alice","password":"secret"})");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->account, "alice");
  EXPECT_EQ(ok->password, "secret");
}

TEST(DecodeRegister, ValidatesEveryField) {
  EXPECT_TRUE(DecodeRegister(R"({"account":"alice","password":"12345678"})").ok());
  EXPECT_NE(ErrorOf(DecodeRegister(R"({"account":"Alice","password":"12345678"})")).find("account"),
            std::string::npos);
  EXPECT_NE(ErrorOf(DecodeRegister(R"({"account":"alice","password":"1234567"})")).find("password"),
            std::string::npos);
  EXPECT_NE(ErrorOf(DecodeRegister(R"({"account":"a","password":"12345678","role":"root"})"))
                .find("role"),
            std::string::npos);
  auto r = DecodeRegister(
      R"({"account":"bob","password":"12345678","role":"admin","email":"b@x.org","phone":"12345"})");
  ASSERT_TRUE(r.ok()) << ErrorOf(r);
  EXPECT_EQ(r->role, "admin");
  EXPECT_EQ(r->email, "b@x.org");
  EXPECT_NE(ErrorOf(DecodeRegister(R"({"account":"bob","password":"12345678","email":"nope"})"))
                .find("email"),
            std::string::npos);
}

TEST(Validate, Account) {
  for (const char* good : {"a", "alice", "a.b-c_d9", "abcdefghijklmnopqrstuvwxyz012345"}) {
    EXPECT_TRUE(ValidateAccount(good).ok()) << good;
  }
  for (const char* bad : {"", "1abc", "_a", "Alice", "al ice", "al@ice",
                          "abcdefghijklmnopqrstuvwxyz0123456", "ali\xc3\xa9"}) {
    EXPECT_FALSE(ValidateAccount(bad).ok()) << bad;
  }
}

TEST(Validate, PasswordCountsCharactersNotBytes) {
  EXPECT_TRUE(ValidatePassword("password", std::string(8, 'x')).ok());
  EXPECT_TRUE(ValidatePassword("password", std::string(128, 'x')).ok());
  EXPECT_FALSE(ValidatePassword("password", std::string(7, 'x')).ok());
  EXPECT_FALSE(ValidatePassword("password", std::string(129, 'x')).ok());
  std::string eight_umlauts;
  for (int i = 0; i < 8; ++i) eight_umlauts += "\xc3\xbc";
  EXPECT_TRUE(ValidatePassword("password", eight_umlauts).ok());
}

TEST(Validate, EmailPhoneNickname) {
  for (const char* good : {"a@b.co", "first.last+tag@sub.example.org"}) {
    EXPECT_TRUE(ValidateEmail(good).ok()) << good;
  }
  for (const char* bad : {"", "a", "a@", "@b.co", "a@b", "a@@b.co", "a b@c.do", "a@b.c", ".a@b.co",
                          "a..b@c.do", "a@-b.co"}) {
    EXPECT_FALSE(ValidateEmail(bad).ok()) << bad;
  }
  for (const char* good : {"12345", "+1 555-0100", "12345678901234567890"}) {
    EXPECT_TRUE(ValidatePhone(good).ok()) << good;
  }
  for (const char* bad : {"1234", "123456789012345678901", "12a45", "+-- -", "(555) 123"}) {
    EXPECT_FALSE(ValidatePhone(bad).ok()) << bad;
  }
  EXPECT_TRUE(ValidateNickname("Ann").ok());
  EXPECT_TRUE(ValidateNickname(std::string(64, 'n')).ok());
  EXPECT_FALSE(ValidateNickname("").ok());
  EXPECT_FALSE(ValidateNickname(std::string(65, 'n')).ok());
  EXPECT_FALSE(ValidateNickname("a\nb").ok());
}

TEST(DecodeProfile, PatchSemantics) {
  auto empty = DecodeProfile("{}");
  ASSERT_TRUE(empty.ok());
  EXPECT_FALSE(empty->nickname.present || empty->email.present || empty->phone.present);
  auto clear = DecodeProfile(R"({"email":null,"phone":null})");
  ASSERT_TRUE(clear.ok());
  EXPECT_TRUE(clear->email.present && !clear->email.value);
  EXPECT_FALSE(DecodeProfile(R"({"nickname":null})").ok());
  for (const char* key : {"password", "role", "account", "foo"}) {
    EXPECT_EQ(ErrorOf(DecodeProfile(std::string(R"({")") + key + R"(":"x"})")),
              std::string("Unknown field: ") + key);
  }
  EXPECT_EQ(ErrorOf(DecodeProfile(R"({"email":5})")), "Field email must be a string");
}

TEST(DecodePasswords, Rules) {
  EXPECT_TRUE(DecodeSetPassword(R"({"old_password":"x","new_password":"12345678"})").ok());
  EXPECT_NE(ErrorOf(DecodeSetPassword(R"({"old_password":"x","new_password":"short"})"))
                .find("new_password"),
            std::string::npos);
  EXPECT_EQ(ErrorOf(DecodeSetPassword(R"({"new_password":"12345678"})")),
            "Missing field: old_password");
  EXPECT_TRUE(DecodeResetPassword(R"({"password":"12345678"})").ok());
  EXPECT_FALSE(DecodeResetPassword(R"({"password":"1"})").ok());
}

}  // namespace
}  // namespace gpuhub::api
