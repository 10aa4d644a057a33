// PercentEncode: RFC 3986 percent-encoding of everything but the unreserved
// characters (letters, digits, "-", ".", "_", "~"), for a path segment or a
// query value. Pure; thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace gpuhub {

std::string PercentEncode(std::string_view text);

}  // namespace gpuhub
