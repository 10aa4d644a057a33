// Decoding and validation of the JSON request bodies of the accounts and
// profile API (contract sections 3 and 4).
//
// Each Decode* takes the raw body and returns the typed request, or an
// InvalidArgument error whose message names the offending field:
//   "Invalid JSON body", "Request body must be a JSON object",
//   "Missing field: <f>", "Field <f> must be a string", "Unknown field: <f>",
//   or the rule that a value breaks (see the Validate* functions).
// Pure functions: thread-safe, no I/O.
#pragma once

#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.hpp"
#include "server/accounts/accounts.hpp"
#include "server/containers/types.hpp"
#include "server/tasks/types.hpp"

namespace gpuhub::api {

struct LoginRequest {
  std::string account;
  std::string password;
};

using RegisterRequest = accounts::NewUser;
using ProfileRequest = accounts::ProfileChange;

struct SetPasswordRequest {
  std::string old_password;
  std::string new_password;
};

struct ResetPasswordRequest {
  std::string password;
};

struct AddMachineRequest {
  std::string id;
};

Result<LoginRequest> DecodeLogin(std::string_view body);
Result<RegisterRequest> DecodeRegister(std::string_view body);
Result<ProfileRequest> DecodeProfile(std::string_view body);
Result<SetPasswordRequest> DecodeSetPassword(std::string_view body);
Result<ResetPasswordRequest> DecodeResetPassword(std::string_view body);
// The id's rule is MachineRegistry's (ValidateMachineId).
Result<AddMachineRequest> DecodeAddMachine(std::string_view body);

// POST /api/containers: {"machine_id", "image_id", "port"?, "name"?}; `port`
// is a port or an array of them. Names and ports are checked by the service.
Result<containers::CreateRequest> DecodeCreateContainer(std::string_view body);
// The same fields inside a WebSocket message's data (other keys are ignored).
Result<containers::CreateRequest> CreateContainerFromJson(const nlohmann::json& data);
// POST /api/admin/images: {"name", "image", "description"?}.
Result<containers::NewImage> DecodeAddImage(std::string_view body);
// POST/PUT /api/task/request: {"machine_id", "containername", "command",
// "duration", and exactly one of "gpu_count", "gpus"}. `duration` is a number
// of hours or a string with units ("90m", "1h30m", "2d"); it must be > 0.
// Limits that depend on the machine or the configuration are the service's.
Result<tasks::TaskRequest> DecodeTaskRequest(std::string_view body);
// POST /api/task/cancel: {"task_id" (or "taskId"), "machine_id"}.
Result<tasks::CancelRequest> DecodeCancelTask(std::string_view body);
// A positive integer id from a path segment or a JSON value; 400 naming `field`.
Result<int64_t> ParseId(std::string_view field, std::string_view text);
Result<int64_t> IdFromJson(std::string_view field, const nlohmann::json& value);

// Field rules. Each returns Ok or InvalidArgument naming the field.
Status ValidateAccount(std::string_view account);  // 1-32 of [a-z0-9_.-], a letter first
Status ValidatePassword(std::string_view field, std::string_view password);  // 8-128 chars
Status ValidateNickname(std::string_view nickname);  // 1-64 characters (UTF-8 code points)
Status ValidateEmail(std::string_view email);        // local@domain.tld, at most 254 chars
Status ValidatePhone(std::string_view phone);        // 5-20 of digits, spaces, '+', '-'

}  // namespace gpuhub::api
