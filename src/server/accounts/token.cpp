#include "server/accounts/token.hpp"

#include <sodium.h>
#include <strings.h>

#include <nlohmann/json.hpp>

#include "common/file_util.hpp"
#include "common/time_util.hpp"

namespace gpuhub::accounts {
namespace {

constexpr std::string_view kHeader = R"({"alg":"HS256","typ":"JWT"})";
constexpr size_t kSecretBytes = 32;

// The first part of every token Issue signs: Base64UrlEncode(kHeader).
const std::string& EncodedHeader() {
  static const std::string encoded = Base64UrlEncode(kHeader);
  return encoded;
}

}  // namespace

std::string_view TokenErrorMessage(TokenError e) {
  switch (e) {
    case TokenError::kMissing:
      return "Token Not Found";
    case TokenError::kInvalid:
      return "Invalid token";
    case TokenError::kExpired:
      return "Token expired";
    case TokenError::kUnknownUser:
      return "User not include";
  }
  return "Invalid token";
}

std::string Base64UrlEncode(std::string_view data) {
  std::string out(sodium_base64_encoded_len(data.size(), sodium_base64_VARIANT_URLSAFE_NO_PADDING),
                  '\0');
  sodium_bin2base64(out.data(), out.size(), reinterpret_cast<const unsigned char*>(data.data()),
                    data.size(), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
  out.resize(out.size() - 1);  // the terminating NUL
  return out;
}

Result<std::string> Base64UrlDecode(std::string_view text) {
  std::string out(text.size() * 3 / 4 + 3, '\0');
  size_t len = 0;
  if (sodium_base642bin(reinterpret_cast<unsigned char*>(out.data()), out.size(), text.data(),
                        text.size(), nullptr, &len, nullptr,
                        sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0) {
    return InvalidArgument("invalid base64url");
  }
  out.resize(len);
  return out;
}

std::string RandomHex(size_t bytes) {
  std::string raw(bytes, '\0');
  randombytes_buf(raw.data(), raw.size());
  std::string hex(bytes * 2 + 1, '\0');
  sodium_bin2hex(hex.data(), hex.size(), reinterpret_cast<const unsigned char*>(raw.data()),
                 raw.size());
  hex.pop_back();
  return hex;
}

TokenCodec::TokenCodec(std::string secret, const Clock& clock, std::chrono::seconds lifetime)
    : secret_(std::move(secret)), clock_(clock), lifetime_(lifetime) {
  crypto_auth_hmacsha256_init(&keyed_, reinterpret_cast<const unsigned char*>(secret_.data()),
                              secret_.size());
}

std::string TokenCodec::Sign(std::string_view signing_input) const {
  crypto_auth_hmacsha256_state state = keyed_;
  unsigned char mac[crypto_auth_hmacsha256_BYTES];
  crypto_auth_hmacsha256_update(
      &state, reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size());
  crypto_auth_hmacsha256_final(&state, mac);
  sodium_memzero(&state, sizeof(state));
  return std::string(reinterpret_cast<const char*>(mac), sizeof(mac));
}

std::string TokenCodec::Issue(int64_t user_id, std::string_view account,
                              std::string_view role) const {
  TimePoint now = clock_.Now();
  nlohmann::json claims = {
      {"sub", user_id},
      {"account", account},
      {"role", role},
      {"iat", ToUnixSeconds(now)},
      {"exp", ToUnixSeconds(now + lifetime_)},
      {"jti", RandomHex(16)},
  };
  std::string input = EncodedHeader() + "." + Base64UrlEncode(claims.dump());
  return input + "." + Base64UrlEncode(Sign(input));
}

std::variant<TokenClaims, TokenError> TokenCodec::Verify(std::string_view token) const {
  size_t dot1 = token.find('.');
  size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return TokenError::kInvalid;
  }
  auto signature = Base64UrlDecode(token.substr(dot2 + 1));
  std::string expected = Sign(token.substr(0, dot2));
  if (!signature.ok() || signature->size() != expected.size() ||
      sodium_memcmp(signature->data(), expected.data(), expected.size()) != 0) {
    return TokenError::kInvalid;
  }
  // Our own header (the usual case) needs no decoding.
  if (token.substr(0, dot1) != EncodedHeader()) {
    auto header = Base64UrlDecode(token.substr(0, dot1));
    if (!header.ok()) return TokenError::kInvalid;
    auto h = nlohmann::json::parse(*header, nullptr, false);
    if (!h.is_object() || h.value("alg", "") != "HS256") return TokenError::kInvalid;
  }
  auto payload = Base64UrlDecode(token.substr(dot1 + 1, dot2 - dot1 - 1));
  if (!payload.ok()) return TokenError::kInvalid;
  auto p = nlohmann::json::parse(*payload, nullptr, false);
  if (!p.is_object()) return TokenError::kInvalid;
  auto integer = [&](const char* k) { return p.contains(k) && p[k].is_number_integer(); };
  auto string = [&](const char* k) { return p.contains(k) && p[k].is_string(); };
  if (!integer("sub") || !integer("iat") || !integer("exp") || !string("account") ||
      !string("role") || !string("jti")) {
    return TokenError::kInvalid;
  }
  TokenClaims c;
  c.user_id = p["sub"].get<int64_t>();
  c.account = p["account"].get<std::string>();
  c.role = p["role"].get<std::string>();
  c.issued_at = FromUnixSeconds(p["iat"].get<int64_t>());
  c.expires_at = FromUnixSeconds(p["exp"].get<int64_t>());
  c.jti = p["jti"].get<std::string>();
  if (clock_.Now() >= c.expires_at) return TokenError::kExpired;
  return c;
}

std::string_view TokenFromHeader(std::string_view authorization) {
  auto trim = [](std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    return s;
  };
  authorization = trim(authorization);
  if (authorization.size() >= 7 && strncasecmp(authorization.data(), "Bearer ", 7) == 0) {
    authorization = trim(authorization.substr(7));
  }
  return authorization;
}

Result<std::string> LoadOrCreateSecret(const std::string& path) {
  auto existing = ReadFile(path, kSecretBytes + 1);
  if (existing.ok()) {
    if (existing->size() != kSecretBytes) {
      return Internal("secret file " + path + " is damaged: expected 32 bytes");
    }
    return std::move(existing).value();
  }
  if (existing.error().code != ErrorCode::kNotFound) return existing.error();
  std::string secret(kSecretBytes, '\0');
  randombytes_buf(secret.data(), secret.size());
  if (auto s = WriteFileAtomic(path, secret, 0600); !s.ok()) return s.error();
  return secret;
}

}  // namespace gpuhub::accounts
