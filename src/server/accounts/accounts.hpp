// Accounts: the users of gpuhub, their tokens, passwords and photos.
//
// Owns the in-memory view of every user and of the revoked tokens, loaded
// from the Store at Open and written through to it: a mutation returns only
// after the Store committed it, and reads never touch the database.
// Authenticate is the hot path of every request: it verifies a session's
// token once (VerifiedTokens remembers it until it expires) and then takes a
// shared lock only, to check revocation and the user on every request.
//
// Thread-safe. Methods marked "heavy" run argon2id and belong on the worker
// pool, not on an I/O thread. Input is expected to be validated already
// (api/requests.hpp); Accounts enforces what needs the state: existence,
// uniqueness, the last admin, passwords.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>
#include <vector>

#include "common/clock.hpp"
#include "common/result.hpp"
#include "server/accounts/login_limiter.hpp"
#include "server/accounts/token.hpp"
#include "server/accounts/token_cache.hpp"
#include "store/store.hpp"

namespace gpuhub::accounts {

// The caller of an authenticated request.
struct Principal {
  int64_t user_id = 0;
  std::string account;
  std::string role;  // from the user's record, not from the token
  std::string jti;
  TimePoint expires_at{};
  // The user's record as it was when the request was authenticated (set by
  // Authenticate; immutable, shared with Accounts).
  std::shared_ptr<const store::User> user;
  bool IsAdmin() const { return role == "admin"; }
};

struct NewUser {
  std::string account;
  std::string password;
  std::optional<std::string> nickname;  // defaults to the account
  std::optional<std::string> email;
  std::optional<std::string> phone;
  std::string role = "user";
};

// A field that may be absent (leave as is), null (clear) or a value (set).
template <typename T>
struct Patch {
  bool present = false;
  std::optional<T> value;
};

struct ProfileChange {
  Patch<std::string> nickname;
  Patch<std::string> email;
  Patch<std::string> phone;
};

// An image to serve as a user's photo.
struct PhotoFile {
  std::string path;
  std::string content_type;
};

struct AccountsOptions {
  std::string photos_dir;   // uploaded photos live here
  std::string avatars_dir;  // preset avatars: <name>.svg files
  int login_max_failures = 10;
  std::chrono::milliseconds login_window = std::chrono::seconds(60);
};

class Accounts {
 public:
  // Loads users and revoked tokens from `store`, which must outlive the result.
  static Result<std::unique_ptr<Accounts>> Open(store::Store& store, TokenCodec codec,
                                                const Clock& clock, AccountsOptions options);

  // First start: when no admin exists, creates account "admin" with
  // `password`, or with a random password that is logged and written to
  // `password_file` (mode 0600). Heavy.
  Status EnsureAdmin(const std::optional<std::string>& password, const std::string& password_file);

  // Checks an Authorization header value: signature, expiry, revocation and
  // that the user still exists. Revocation and the user are checked on every
  // call; signature and claims come from the cache of verified tokens after a
  // token's first use.
  std::variant<Principal, TokenError> Authenticate(std::string_view authorization) const;

  // Seconds until `account` may try to log in again, or nullopt if it may now.
  std::optional<std::chrono::seconds> LoginRetryAfter(const std::string& account);

  // A new token for the right password. kNotFound "Account not found",
  // kUnauthenticated "Wrong password" (counted by the limiter). Heavy.
  Result<std::string> Login(const std::string& account, std::string_view password);

  // kConflict "Account already exists". Heavy.
  Result<store::User> Register(const NewUser& user);

  // Revokes the caller's token for the rest of its life.
  Status Logout(const Principal& principal);

  // A fresh token for the caller; the old one stays valid.
  std::string Refresh(const Principal& principal) const;

  std::optional<store::User> FindUser(int64_t id) const;
  // The same without copying the record; null if there is no such user.
  std::shared_ptr<const store::User> GetUser(int64_t id) const;
  std::vector<store::User> ListUsers() const;  // ordered by id

  // kNotFound "Account not found"; kConflict "Cannot delete the last admin".
  Status DeleteUser(std::string_view account);

  // Admin reset. kNotFound "Account not found". Heavy.
  Status ResetPassword(std::string_view account, std::string_view password);

  // kUnauthenticated "Wrong password" when `old_password` does not match. Heavy.
  Status ChangePassword(int64_t user_id, std::string_view old_password,
                        std::string_view new_password);

  Result<store::User> UpdateProfile(int64_t user_id, const ProfileChange& change);

  // Stores `image` (already recognised as `content_type`) as the user's photo.
  Result<store::User> SetUploadedPhoto(int64_t user_id, std::string_view image,
                                       std::string_view content_type);
  // kInvalidArgument naming the field "file" for a name not in Avatars().
  Result<store::User> SetPresetPhoto(int64_t user_id, std::string_view name);

  // The preset avatars' names, sorted.
  const std::vector<std::string>& Avatars() const { return avatars_; }

  // The file of the user's current photo; nullopt if the user has none.
  std::optional<PhotoFile> FindPhoto(int64_t user_id) const;

 private:
  Accounts(store::Store& store, TokenCodec codec, const Clock& clock, AccountsOptions options);
  Result<store::User> UpdateUser(int64_t user_id, const std::function<void(store::User&)>& edit);
  std::optional<store::User> FindByAccountLocked(std::string_view account) const;

  store::Store& store_;
  const TokenCodec codec_;
  const Clock& clock_;
  const VerifiedTokens tokens_;  // over codec_ and clock_
  const AccountsOptions options_;
  LoginLimiter limiter_;
  std::vector<std::string> avatars_;

  std::mutex write_mu_;  // serialises mutations: store write, then cache update
  mutable std::shared_mutex mu_;
  // Records are immutable once published: an update replaces the pointer.
  std::unordered_map<int64_t, std::shared_ptr<const store::User>> users_;  // guarded by mu_
  std::unordered_map<std::string, int64_t> by_account_;                    // guarded by mu_
  std::unordered_map<std::string, TimePoint> revoked_;  // jti -> expiry; guarded by mu_
};

}  // namespace gpuhub::accounts
