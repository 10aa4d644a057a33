#include "server/http/message.hpp"

#include <nlohmann/json.hpp>

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
  Response res{status, 11};
  res.set(bhttp::field::content_type, "application/json");
  res.set(bhttp::field::cache_control, "no-store");
  res.body() = body.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return res;
}

Response MessageResponse(Status status, std::string_view message) {
  return JsonResponse(status, nlohmann::json{{"message", message}});
}

Response ErrorResponse(const Error& error) {
  return MessageResponse(StatusFor(error.code), error.message);
}

}  // namespace gpuhub::http
