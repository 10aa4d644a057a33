#include "server/http/message.hpp"

#include <nlohmann/json.hpp>
#include <ostream>

namespace gpuhub::http {

Status StatusFor(ErrorCode code) {
  switch (code) {
    case ErrorCode::kInvalidArgument:
      return Status::bad_request;
    case ErrorCode::kUnauthenticated:
      return Status::unauthorized;
    case ErrorCode::kPermissionDenied:
      return Status::forbidden;
    case ErrorCode::kNotFound:
      return Status::not_found;
    case ErrorCode::kConflict:
      return Status::conflict;
    case ErrorCode::kTooLarge:
      return Status::payload_too_large;
    case ErrorCode::kUnsupported:
      return Status::unsupported_media_type;
    case ErrorCode::kTooManyRequests:
      return Status::too_many_requests;
    case ErrorCode::kUnavailable:
      return Status::service_unavailable;
    case ErrorCode::kInternal:
      return Status::internal_server_error;
  }
  return Status::internal_server_error;
}

Response JsonResponse(Status status, const nlohmann::json& body) {
  return JsonTextResponse(status,
                          body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

void AppendJsonString(std::string& out, std::string_view s) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) {  // UTF-8 (or not): as nlohmann writes it
      out += nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
      return;
    }
  }
  out += '"';
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += "\\u00";
          out += kHex[(c >> 4) & 0xf];
          out += kHex[c & 0xf];
        } else {
          out += c;
        }
    }
  }
  out += '"';
}

Response JsonTextResponse(Status status, std::string json) {
  Response res{status, 11};
  res.set(bhttp::field::content_type, "application/json");
  res.set(bhttp::field::cache_control, "no-store");
  res.body() = std::move(json);
  return res;
}

void PrintTo(const ResponseBody::value_type& body, std::ostream* os) {
  *os << '"' << body.view() << '"';
}

Response MessageResponse(Status status, std::string_view message) {
  return JsonResponse(status, nlohmann::json{{"message", message}});
}

Response ErrorResponse(const Error& error) {
  return MessageResponse(StatusFor(error.code), error.message);
}

}  // namespace gpuhub::http
