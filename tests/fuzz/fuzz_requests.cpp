// libFuzzer target for the JSON request decoders (server/api/requests).
//
// Input layout: byte 0 picks the decoder (modulo their number); the rest is
// the request body. The body is also given to every Validate* function.
//
// Oracles besides the sanitizers: every failure is InvalidArgument with a
// message, and every decoded request satisfies the field rules.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "server/api/requests.hpp"

namespace {

namespace api = gpuhub::api;

void Check(bool condition) {
  if (!condition) std::abort();
}

template <typename T>
bool Failed(const gpuhub::Result<T>& r) {
  if (r.ok()) return false;
  Check(r.error().code == gpuhub::ErrorCode::kInvalidArgument);
  Check(!r.error().message.empty());
  return true;
}

void CheckStatus(const gpuhub::Status& s) {
  if (!s.ok()) Check(s.error().code == gpuhub::ErrorCode::kInvalidArgument);
}

void CheckOptional(const std::optional<std::string>& v,
                   gpuhub::Status (*validate)(std::string_view)) {
  if (v) Check(validate(*v).ok());
}

template <typename T>
void CheckPatch(const gpuhub::accounts::Patch<T>& p, gpuhub::Status (*validate)(std::string_view)) {
  if (!p.present) Check(!p.value.has_value());
  if (p.value) Check(validate(*p.value).ok());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const std::string_view body(reinterpret_cast<const char*>(data) + 1, size - 1);

  CheckStatus(api::ValidateAccount(body));
  CheckStatus(api::ValidatePassword("password", body));
  CheckStatus(api::ValidateNickname(body));
  CheckStatus(api::ValidateEmail(body));
  CheckStatus(api::ValidatePhone(body));

  if (!Failed(api::ParseId("id", body))) Check(*api::ParseId("id", body) >= 1);

  switch (data[0] % 7) {
    case 0: {
      auto r = api::DecodeLogin(body);
      if (!Failed(r)) Check(!r->account.empty() && !r->password.empty());
      break;
    }
    case 1: {
      auto r = api::DecodeRegister(body);
      if (!Failed(r)) {
        Check(api::ValidateAccount(r->account).ok());
        Check(api::ValidatePassword("password", r->password).ok());
        CheckOptional(r->nickname, api::ValidateNickname);
        CheckOptional(r->email, api::ValidateEmail);
        CheckOptional(r->phone, api::ValidatePhone);
        Check(r->role == "user" || r->role == "admin");
      }
      break;
    }
    case 2: {
      auto r = api::DecodeProfile(body);
      if (!Failed(r)) {
        CheckPatch(r->nickname, api::ValidateNickname);
        Check(!r->nickname.present || r->nickname.value.has_value());  // cannot be cleared
        CheckPatch(r->email, api::ValidateEmail);
        CheckPatch(r->phone, api::ValidatePhone);
      }
      break;
    }
    case 3: {
      auto r = api::DecodeSetPassword(body);
      if (!Failed(r)) Check(api::ValidatePassword("new_password", r->new_password).ok());
      break;
    }
    case 4: {
      auto r = api::DecodeCreateContainer(body);
      if (!Failed(r)) {
        Check(r->image_id >= 1);
        for (int p : r->ports) Check(p >= 1 && p <= 65535);
      }
      break;
    }
    case 5: {
      (void)Failed(api::DecodeAddImage(body));
      break;
    }
    default: {
      auto r = api::DecodeResetPassword(body);
      if (!Failed(r)) Check(api::ValidatePassword("password", r->password).ok());
      break;
    }
  }
  return 0;
}
