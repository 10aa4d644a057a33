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

#include <optional>
#include <string>
#include <string_view>

#include "common/result.hpp"
#include "server/accounts/accounts.hpp"

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

// Field rules. Each returns Ok or InvalidArgument naming the field.
Status ValidateAccount(std::string_view account);  // 1-32 of [a-z0-9_.-], a letter first
Status ValidatePassword(std::string_view field, std::string_view password);  // 8-128 chars
Status ValidateNickname(std::string_view nickname);  // 1-64 characters (UTF-8 code points)
Status ValidateEmail(std::string_view email);        // local@domain.tld, at most 254 chars
Status ValidatePhone(std::string_view phone);        // 5-20 of digits, spaces, '+', '-'

}  // namespace gpuhub::api
