// Time formatting and duration parsing shared by server, agent and CLI.
// All functions are pure and thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/clock.hpp"
#include "common/result.hpp"

namespace gpuhub {

// "2026-11-24T01:02:03Z" (UTC, whole seconds).
std::string FormatIso8601(TimePoint t);

// Seconds since the Unix epoch, and back.
int64_t ToUnixSeconds(TimePoint t);
TimePoint FromUnixSeconds(int64_t s);

// Parses a duration written with units: "90s", "15m", "1h30m", "2d", "1.5h".
// Components are a non-negative decimal number followed by one of s, m, h, d;
// they may repeat in any order and sum. A bare number takes `bare_unit`
// (for example 1 s for config files, 1 h for task requests). Returns
// InvalidArgument on anything else, including an empty string and overflow.
Result<std::chrono::milliseconds> ParseDuration(std::string_view text,
                                                std::chrono::milliseconds bare_unit);

}  // namespace gpuhub
