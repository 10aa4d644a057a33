#include "server/accounts/accounts.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>

#include "common/file_util.hpp"
#include "server/accounts/password.hpp"

namespace gpuhub::accounts {
namespace {

constexpr char kAccountNotFound[] = "Account not found";
constexpr size_t kPruneEvery = 1024;

std::vector<std::string> ScanAvatars(const std::string& dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    if (entry.path().extension() == ".svg") names.push_back(entry.path().stem().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

// Deletes the file of an uploaded photo; preset avatars and no photo are left alone.
void RemoveUpload(const std::string& photos_dir, const std::optional<store::Photo>& photo) {
  if (!photo || photo->kind != store::Photo::Kind::kUpload) return;
  std::error_code ec;
  std::filesystem::remove(std::filesystem::path(photos_dir) / photo->ref, ec);
}

}  // namespace

Accounts::Accounts(store::Store& store, TokenCodec codec, const Clock& clock,
                   AccountsOptions options)
    : store_(store),
      codec_(std::move(codec)),
      clock_(clock),
      tokens_(codec_, clock_),
      options_(std::move(options)),
      limiter_(clock, options_.login_max_failures, options_.login_window),
      avatars_(ScanAvatars(options_.avatars_dir)) {}

Result<std::unique_ptr<Accounts>> Accounts::Open(store::Store& store, TokenCodec codec,
                                                 const Clock& clock, AccountsOptions options) {
  if (auto s = MakeDirs(options.photos_dir); !s.ok()) return s.error();
  std::unique_ptr<Accounts> a(new Accounts(store, std::move(codec), clock, std::move(options)));
  auto users = store.ListUsers();
  if (!users.ok()) return users.error();
  for (auto& u : *users) {
    a->by_account_[u.account] = u.id;
    int64_t id = u.id;
    a->users_[id] = std::make_shared<const store::User>(std::move(u));
  }
  if (auto s = store.PruneRevokedTokens(clock.Now()); !s.ok()) return s.error();
  auto revoked = store.ListRevokedTokens(clock.Now());
  if (!revoked.ok()) return revoked.error();
  // The exact expiry does not matter for lookups; it only lets us prune.
  TimePoint keep_until = clock.Now() + std::chrono::hours(24 * 366);
  for (auto& jti : *revoked) a->revoked_.emplace(std::move(jti), keep_until);
  if (a->avatars_.empty()) {
    spdlog::warn("no preset avatars found in {}", a->options_.avatars_dir);
  }
  return a;
}

Status Accounts::EnsureAdmin(const std::optional<std::string>& password,
                             const std::string& password_file) {
  {
    std::shared_lock lock(mu_);
    for (const auto& [id, u] : users_) {
      if (u->role == "admin") return Status::Ok();
    }
    if (by_account_.count("admin")) {
      return Internal("no admin exists but account 'admin' is taken by a non-admin user");
    }
  }
  NewUser admin{.account = "admin", .password = password.value_or(RandomHex(12)), .role = "admin"};
  if (auto r = Register(admin); !r.ok()) return r.error();
  if (password) {
    spdlog::info("created account admin with the password from GPUHUB_ADMIN_PASSWORD");
    return Status::Ok();
  }
  if (auto s = WriteFileAtomic(password_file, admin.password + "\n", 0600); !s.ok()) return s;
  spdlog::warn("created account admin with password {} (also written to {})", admin.password,
               password_file);
  return Status::Ok();
}

std::variant<Principal, TokenError> Accounts::Authenticate(std::string_view authorization) const {
  std::string_view token = TokenFromHeader(authorization);
  if (token.empty()) return TokenError::kMissing;
  auto verified = tokens_.Verify(token);
  if (auto* e = std::get_if<TokenError>(&verified)) return *e;
  auto& claims = std::get<TokenClaims>(verified);
  std::shared_lock lock(mu_);
  if (revoked_.count(claims.jti)) return TokenError::kInvalid;
  auto it = users_.find(claims.user_id);
  if (it == users_.end()) return TokenError::kUnknownUser;
  const store::User& user = *it->second;
  return Principal{claims.user_id,        user.account,      user.role,
                   std::move(claims.jti), claims.expires_at, it->second};
}

std::optional<std::chrono::seconds> Accounts::LoginRetryAfter(const std::string& account) {
  return limiter_.RetryAfter(account);
}

Result<std::string> Accounts::Login(const std::string& account, std::string_view password) {
  std::optional<store::User> user;
  {
    std::shared_lock lock(mu_);
    user = FindByAccountLocked(account);
  }
  if (!user) return NotFound(kAccountNotFound);
  if (!VerifyPassword(user->password_hash, password)) {
    limiter_.RecordFailure(account);
    return Error{ErrorCode::kUnauthenticated, "Wrong password"};
  }
  return codec_.Issue(user->id, user->account, user->role);
}

Result<store::User> Accounts::Register(const NewUser& user) {
  auto hash = HashPassword(user.password);
  if (!hash.ok()) return hash.error();
  store::User u;
  u.account = user.account;
  u.password_hash = std::move(hash).value();
  u.nickname = user.nickname.value_or(user.account);
  u.email = user.email;
  u.phone = user.phone;
  u.role = user.role;
  u.created_at = clock_.Now();
  std::lock_guard write(write_mu_);
  {
    std::shared_lock lock(mu_);
    if (by_account_.count(u.account)) return Conflict("Account already exists");
  }
  auto created = store_.CreateUser(u);
  if (!created.ok()) return created.error();
  std::unique_lock lock(mu_);
  by_account_[created->account] = created->id;
  users_[created->id] = std::make_shared<const store::User>(*created);
  return created;
}

Status Accounts::Logout(const Principal& principal) {
  std::lock_guard write(write_mu_);
  if (auto s = store_.RevokeToken(principal.jti, principal.expires_at); !s.ok()) return s;
  std::unique_lock lock(mu_);
  revoked_[principal.jti] = principal.expires_at;
  if (revoked_.size() % kPruneEvery == 0) {
    TimePoint now = clock_.Now();
    std::erase_if(revoked_, [now](const auto& kv) { return kv.second <= now; });
    if (auto s = store_.PruneRevokedTokens(now); !s.ok()) {
      spdlog::warn("pruning revoked tokens failed: {}", s.error().message);
    }
  }
  return Status::Ok();
}

std::string Accounts::Refresh(const Principal& principal) const {
  return codec_.Issue(principal.user_id, principal.account, principal.role);
}

std::optional<store::User> Accounts::FindUser(int64_t id) const {
  auto user = GetUser(id);
  if (!user) return std::nullopt;
  return *user;
}

std::shared_ptr<const store::User> Accounts::GetUser(int64_t id) const {
  std::shared_lock lock(mu_);
  auto it = users_.find(id);
  return it == users_.end() ? nullptr : it->second;
}

std::optional<store::User> Accounts::FindByAccountLocked(std::string_view account) const {
  auto it = by_account_.find(std::string(account));
  if (it == by_account_.end()) return std::nullopt;
  return *users_.at(it->second);
}

std::vector<store::User> Accounts::ListUsers() const {
  std::vector<store::User> out;
  {
    std::shared_lock lock(mu_);
    out.reserve(users_.size());
    for (const auto& [id, u] : users_) out.push_back(*u);
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  return out;
}

Status Accounts::DeleteUser(std::string_view account) {
  std::lock_guard write(write_mu_);
  std::optional<store::User> user;
  size_t admins = 0;
  {
    std::shared_lock lock(mu_);
    user = FindByAccountLocked(account);
    for (const auto& [id, u] : users_) admins += u->role == "admin";
  }
  if (!user) return NotFound(kAccountNotFound);
  if (user->role == "admin" && admins == 1) return Conflict("Cannot delete the last admin");
  if (auto s = store_.DeleteUser(user->id); !s.ok()) return s;
  {
    std::unique_lock lock(mu_);
    users_.erase(user->id);
    by_account_.erase(user->account);
  }
  RemoveUpload(options_.photos_dir, user->photo);
  return Status::Ok();
}

Result<store::User> Accounts::UpdateUser(int64_t user_id,
                                         const std::function<void(store::User&)>& edit) {
  // Callers hold write_mu_.
  std::optional<store::User> user = FindUser(user_id);
  if (!user) return NotFound(kAccountNotFound);
  edit(*user);
  if (auto s = store_.UpdateUser(*user); !s.ok()) return s.error();
  std::unique_lock lock(mu_);
  users_[user_id] = std::make_shared<const store::User>(*user);
  return *user;
}

Status Accounts::ResetPassword(std::string_view account, std::string_view password) {
  auto hash = HashPassword(password);
  if (!hash.ok()) return hash.error();
  std::lock_guard write(write_mu_);
  std::optional<store::User> user;
  {
    std::shared_lock lock(mu_);
    user = FindByAccountLocked(account);
  }
  if (!user) return NotFound(kAccountNotFound);
  auto r = UpdateUser(user->id, [&](store::User& u) { u.password_hash = *hash; });
  if (!r.ok()) return r.error();
  return Status::Ok();
}

Status Accounts::ChangePassword(int64_t user_id, std::string_view old_password,
                                std::string_view new_password) {
  std::optional<store::User> user = FindUser(user_id);
  if (!user) return NotFound(kAccountNotFound);
  if (!VerifyPassword(user->password_hash, old_password)) {
    return Error{ErrorCode::kUnauthenticated, "Wrong password"};
  }
  auto hash = HashPassword(new_password);
  if (!hash.ok()) return hash.error();
  std::lock_guard write(write_mu_);
  auto r = UpdateUser(user_id, [&](store::User& u) { u.password_hash = *hash; });
  if (!r.ok()) return r.error();
  return Status::Ok();
}

Result<store::User> Accounts::UpdateProfile(int64_t user_id, const ProfileChange& change) {
  std::lock_guard write(write_mu_);
  return UpdateUser(user_id, [&](store::User& u) {
    if (change.nickname.present && change.nickname.value) u.nickname = *change.nickname.value;
    if (change.email.present) u.email = change.email.value;
    if (change.phone.present) u.phone = change.phone.value;
  });
}

Result<store::User> Accounts::SetUploadedPhoto(int64_t user_id, std::string_view image,
                                               std::string_view content_type) {
  std::string version = RandomHex(8);
  std::string subtype(content_type.substr(content_type.find('/') + 1));
  std::string file = std::to_string(user_id) + "-" + version + "." + subtype;
  std::string path = (std::filesystem::path(options_.photos_dir) / file).string();
  if (auto s = WriteFileAtomic(path, image, 0644); !s.ok()) return s.error();
  std::lock_guard write(write_mu_);
  std::optional<store::Photo> old;
  auto r = UpdateUser(user_id, [&](store::User& u) {
    old = u.photo;
    u.photo = store::Photo{store::Photo::Kind::kUpload, file, std::string(content_type), version};
  });
  if (!r.ok()) {
    std::error_code ec;
    std::filesystem::remove(path, ec);
    return r;
  }
  RemoveUpload(options_.photos_dir, old);
  return r;
}

Result<store::User> Accounts::SetPresetPhoto(int64_t user_id, std::string_view name) {
  if (!std::binary_search(avatars_.begin(), avatars_.end(), name)) {
    return InvalidArgument("file must name a preset avatar from /api/user/avatars, not \"" +
                           std::string(name.substr(0, 64)) + "\"");
  }
  std::lock_guard write(write_mu_);
  std::optional<store::Photo> old;
  auto r = UpdateUser(user_id, [&](store::User& u) {
    old = u.photo;
    u.photo = store::Photo{store::Photo::Kind::kPreset, std::string(name), "image/svg+xml",
                           std::string(name)};
  });
  if (r.ok()) RemoveUpload(options_.photos_dir, old);
  return r;
}

std::optional<PhotoFile> Accounts::FindPhoto(int64_t user_id) const {
  auto user = GetUser(user_id);
  if (!user || !user->photo) return std::nullopt;
  const auto& p = *user->photo;
  std::filesystem::path dir =
      p.kind == store::Photo::Kind::kUpload ? options_.photos_dir : options_.avatars_dir;
  std::string file = p.kind == store::Photo::Kind::kUpload ? p.ref : p.ref + ".svg";
  return PhotoFile{(dir / file).string(), p.content_type};
}

}  // namespace gpuhub::accounts
