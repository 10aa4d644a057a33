// VerifiedTokens: TokenCodec::Verify with a memory of the tokens it accepted.
//
// A session sends the same token with every request; verifying it each time
// (HMAC, three base64 decodes, two JSON parses) is most of an authenticated
// request's cost. This remembers, per token, the claims that Verify found,
// until the token's expiry by the injected clock: a remembered token that has
// expired since is reported kExpired and forgotten. Only accepted tokens are
// kept, keyed by a keyed hash of the whole token and compared in constant
// time, so a token is never taken for another. The cache is bounded
// (`capacity` tokens): when full it drops expired tokens first, then
// arbitrary ones, which only costs their next request a full Verify.
//
// It knows nothing of revocation or of users: Accounts checks both on every
// request, cached or not, so a logout takes effect at once.
//
// Thread-safe (sharded locks); the codec and clock must outlive it.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>

#include "common/clock.hpp"
#include "server/accounts/token.hpp"

namespace gpuhub::accounts {

class VerifiedTokens {
 public:
  static constexpr size_t kDefaultCapacity = 16384;

  VerifiedTokens(const TokenCodec& codec, const Clock& clock, size_t capacity = kDefaultCapacity);

  // What codec.Verify(token) answers, without verifying again a token that
  // was accepted before.
  std::variant<TokenClaims, TokenError> Verify(std::string_view token) const;

  // Tokens remembered now.
  size_t size() const;

 private:
  static constexpr size_t kShards = 8;
  struct Entry {
    std::string token;
    TokenClaims claims;
  };
  struct Shard {
    mutable std::mutex mu;
    std::unordered_map<uint64_t, Entry> entries;  // keyed hash -> token; guarded by mu
  };
  uint64_t Key(std::string_view token) const;
  void Remember(uint64_t key, std::string_view token, const TokenClaims& claims) const;

  const TokenCodec& codec_;
  const Clock& clock_;
  const size_t shard_capacity_;
  std::array<unsigned char, 16> hash_key_{};  // random, for SipHash
  mutable std::array<Shard, kShards> shards_;
};

}  // namespace gpuhub::accounts
