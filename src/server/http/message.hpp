// HTTP message types and the one place where errors become HTTP responses.
// Pure helpers; thread-safe.
#pragma once

#include <boost/beast/http.hpp>
#include <nlohmann/json_fwd.hpp>
#include <string_view>

#include "common/result.hpp"

namespace gpuhub::http {

namespace bhttp = boost::beast::http;
using Request = bhttp::request<bhttp::string_body>;
using Response = bhttp::response<bhttp::string_body>;
using Status = bhttp::status;

// Beast's string_view as a std::string_view.
inline std::string_view Sv(boost::beast::string_view s) { return {s.data(), s.size()}; }

// The HTTP status for an expected failure.
Status StatusFor(ErrorCode code);

// A response with a JSON body (invalid UTF-8 in strings is replaced, never thrown).
Response JsonResponse(Status status, const nlohmann::json& body);

// {"message": "..."} with the given status.
Response MessageResponse(Status status, std::string_view message);

// The error's status and {"message": error.message}.
Response ErrorResponse(const Error& error);

}  // namespace gpuhub::http
