// Access tokens: HS256 JWTs with claims sub, account, role, iat, exp, jti.
//
// TokenCodec signs and checks tokens with the server secret; it knows nothing
// of revocation or of which users exist (Accounts adds both). It is immutable
// after construction and thread-safe.
#pragma once

#include <sodium.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "common/clock.hpp"
#include "common/result.hpp"

namespace gpuhub::accounts {

struct TokenClaims {
  int64_t user_id = 0;
  std::string account;
  std::string role;
  TimePoint issued_at{};
  TimePoint expires_at{};
  std::string jti;
};

// The four token failures of the contract, each with its exact message.
enum class TokenError { kMissing, kInvalid, kExpired, kUnknownUser };
std::string_view TokenErrorMessage(TokenError e);

class TokenCodec {
 public:
  // `secret` is the raw HMAC key (32 bytes from LoadOrCreateSecret).
  TokenCodec(std::string secret, const Clock& clock, std::chrono::seconds lifetime);

  // A new signed token for the user, valid for the configured lifetime, with
  // a fresh random jti.
  std::string Issue(int64_t user_id, std::string_view account, std::string_view role) const;

  // Checks format, algorithm, signature and expiry. kInvalid for anything
  // malformed or wrongly signed, kExpired when only the expiry fails.
  // (VerifiedTokens remembers what this accepted.)
  std::variant<TokenClaims, TokenError> Verify(std::string_view token) const;

 private:
  std::string Sign(std::string_view signing_input) const;

  std::string secret_;
  crypto_auth_hmacsha256_state keyed_;  // HMAC state after the key, copied per use
  const Clock& clock_;
  std::chrono::seconds lifetime_;
};

// The token inside an Authorization header value: "Bearer <t>" or "<t>".
// Empty when the header is empty.
std::string_view TokenFromHeader(std::string_view authorization);

// Reads the 32-byte secret from `path`, or creates it (mode 0600, fsynced)
// when the file does not exist. kInternal on I/O failure or a damaged file.
Result<std::string> LoadOrCreateSecret(const std::string& path);

// URL-safe base64 without padding, as JWTs use.
std::string Base64UrlEncode(std::string_view data);
Result<std::string> Base64UrlDecode(std::string_view text);

// A random lowercase hex string of 2*bytes characters (libsodium randombytes).
std::string RandomHex(size_t bytes);

}  // namespace gpuhub::accounts
