// gzip for response bodies: compress a document once, serve it to every
// client that accepts it. Pure functions; thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace gpuhub::http {

// `data` as a gzip member (RFC 1952), zlib's deflate at `level` (1 fastest,
// 9 smallest). Throws std::bad_alloc when zlib runs out of memory.
std::string GzipCompress(std::string_view data, int level = 6);

// Whether a request's Accept-Encoding value (all its fields joined with ",")
// accepts the gzip coding: "gzip" (or "x-gzip") with q > 0, or else "*" with
// q > 0 (RFC 9110, 12.5.3). An empty value accepts only identity.
bool AcceptsGzip(std::string_view accept_encoding);

}  // namespace gpuhub::http
