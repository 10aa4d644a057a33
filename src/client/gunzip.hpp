// Gunzip: the body of a response sent with Content-Encoding: gzip, decoded.
// Pure function; thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "common/result.hpp"

namespace gpuhub::client {

// The data of the gzip member in `data` (RFC 1952). kInternal when `data`
// is not gzip, is cut short, or would decode to more than `limit` bytes.
Result<std::string> Gunzip(std::string_view data, size_t limit);

}  // namespace gpuhub::client
