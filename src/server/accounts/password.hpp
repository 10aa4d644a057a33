// Password hashing with argon2id (libsodium crypto_pwhash_str).
//
// Both functions are CPU- and memory-heavy by design (tens of milliseconds,
// 64 MiB): call them on the worker pool, never on an I/O thread. Thread-safe
// once sodium_init() has run (InitCrypto).
#pragma once

#include <string>
#include <string_view>

#include "common/result.hpp"

namespace gpuhub::accounts {

// Initialises libsodium. Call once at start, before any other thread runs.
Status InitCrypto();

// An argon2id hash string of `password` with a random salt.
Result<std::string> HashPassword(std::string_view password);

// True when `password` matches `hash`. A malformed hash never matches.
bool VerifyPassword(std::string_view hash, std::string_view password);

}  // namespace gpuhub::accounts
