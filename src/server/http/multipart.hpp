// multipart/form-data request bodies (RFC 7578 over the RFC 2046 framing).
//
// MultipartBoundary reads the boundary from a Content-Type header value;
// ParseMultipart splits a complete, already size-limited body into its parts.
// The parser is strict about framing (CRLF line ends, a close delimiter) and
// lenient where senders differ (preamble, epilogue, transport padding, header
// case, quoted or token parameter values). It runs in time linear in the body
// and never reads outside it.
//
// Pure functions: thread-safe, no I/O, no exceptions besides std::bad_alloc.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace gpuhub::http {

// The boundary parameter of `content_type` (a Content-Type header value).
// The media type is compared case-insensitively; the parameter may be a token
// or a quoted string and must be 1-70 RFC 2046 bchars, not ending in a space.
// Errors: kUnsupported "Body must be multipart/form-data" when the media type
// is anything else (or unparsable); kInvalidArgument when the boundary is
// missing, repeated or invalid, or the parameters are malformed.
Result<std::string> MultipartBoundary(std::string_view content_type);

// One part of a form. `data` is the exact bytes between the part's header
// section and the next delimiter.
struct MultipartPart {
  std::string name;                     // Content-Disposition name (may be empty)
  std::optional<std::string> filename;  // Content-Disposition filename, if given
  std::string content_type;             // the part's Content-Type value, or "text/plain"
  std::string data;
};

struct MultipartLimits {
  size_t max_parts = 16;
  size_t max_header_bytes = 8192;  // per part: its header lines with their CRLFs
};

// Splits `body` framed by `boundary` (as returned by MultipartBoundary).
// Every part must carry "Content-Disposition: form-data" with a name
// parameter; a filename* (RFC 5987) parameter is used only when filename is
// absent. Content-Transfer-Encoding other than 7bit, 8bit or binary is
// refused. All errors are kInvalidArgument, for example "Truncated multipart
// body", "Too many multipart parts", "Multipart part headers too large",
// "Multipart part lacks Content-Disposition form-data name".
Result<std::vector<MultipartPart>> ParseMultipart(std::string_view body, std::string_view boundary,
                                                  const MultipartLimits& limits = {});

}  // namespace gpuhub::http
