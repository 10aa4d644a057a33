// Logging set-up: one spdlog logger on stderr, UTC timestamps, logfmt-style
// key=value fields after the message. Call SetupLogging once at start, before
// any thread logs; spdlog's logging calls themselves are thread-safe.
#pragma once

#include <string_view>

#include "common/result.hpp"

namespace gpuhub {

// level: trace, debug, info, warn, error, critical or off.
Status SetupLogging(std::string_view level);

}  // namespace gpuhub
