#include "server/accounts/token_cache.hpp"

#include <sodium.h>

#include <algorithm>
#include <cstring>

namespace gpuhub::accounts {
namespace {

// Constant-time equality of two equally long byte strings, a word at a time
// (sodium_memcmp goes byte by byte through volatile pointers, several times
// slower on a 200-byte token).
bool SameBytes(std::string_view a, std::string_view b) {
  uint64_t diff = 0;
  size_t i = 0;
  for (; i + 8 <= a.size(); i += 8) {
    uint64_t x, y;
    std::memcpy(&x, a.data() + i, 8);
    std::memcpy(&y, b.data() + i, 8);
    diff |= x ^ y;
  }
  for (; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace

VerifiedTokens::VerifiedTokens(const TokenCodec& codec, const Clock& clock, size_t capacity)
    : codec_(codec), clock_(clock), shard_capacity_(std::max<size_t>(1, capacity / kShards)) {
  static_assert(sizeof(hash_key_) == crypto_shorthash_KEYBYTES);
  crypto_shorthash_keygen(hash_key_.data());
}

uint64_t VerifiedTokens::Key(std::string_view token) const {
  unsigned char out[crypto_shorthash_BYTES];
  crypto_shorthash(out, reinterpret_cast<const unsigned char*>(token.data()), token.size(),
                   hash_key_.data());
  uint64_t key;
  std::memcpy(&key, out, sizeof(key));
  return key;
}

std::variant<TokenClaims, TokenError> VerifiedTokens::Verify(std::string_view token) const {
  uint64_t key = Key(token);
  Shard& shard = shards_[key % kShards];
  {
    std::lock_guard lock(shard.mu);
    auto it = shard.entries.find(key);
    if (it != shard.entries.end() && it->second.token.size() == token.size() &&
        SameBytes(it->second.token, token)) {
      if (clock_.Now() >= it->second.claims.expires_at) {
        shard.entries.erase(it);
        return TokenError::kExpired;
      }
      return it->second.claims;
    }
  }
  auto verified = codec_.Verify(token);
  if (const auto* claims = std::get_if<TokenClaims>(&verified)) Remember(key, token, *claims);
  return verified;
}

void VerifiedTokens::Remember(uint64_t key, std::string_view token,
                              const TokenClaims& claims) const {
  Shard& shard = shards_[key % kShards];
  std::lock_guard lock(shard.mu);
  if (shard.entries.size() >= shard_capacity_ && !shard.entries.count(key)) {
    TimePoint now = clock_.Now();
    std::erase_if(shard.entries,
                  [now](const auto& kv) { return now >= kv.second.claims.expires_at; });
    // Still full: drop some arbitrary tokens (an eighth), not one per insert.
    size_t drop =
        shard.entries.size() >= shard_capacity_ ? std::max<size_t>(1, shard_capacity_ / 8) : 0;
    for (auto it = shard.entries.begin(); drop > 0 && it != shard.entries.end(); --drop) {
      it = shard.entries.erase(it);
    }
  }
  shard.entries.insert_or_assign(key, Entry{std::string(token), claims});
}

size_t VerifiedTokens::size() const {
  size_t n = 0;
  for (const auto& shard : shards_) {
    std::lock_guard lock(shard.mu);
    n += shard.entries.size();
  }
  return n;
}

}  // namespace gpuhub::accounts
