#include "server/api/requests.hpp"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <initializer_list>
#include <nlohmann/json.hpp>

#include "common/time_util.hpp"

namespace gpuhub::api {
namespace {

using accounts::Patch;
using nlohmann::json;

// A request body parsed into a JSON object whose keys are all in `allowed`.
Result<json> ParseObject(std::string_view body, std::initializer_list<std::string_view> allowed) {
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) return InvalidArgument("Invalid JSON body");
  if (!j.is_object()) return InvalidArgument("Request body must be a JSON object");
  for (const auto& [key, value] : j.items()) {
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      return InvalidArgument("Unknown field: " + key.substr(0, 64));
    }
  }
  return j;
}

Result<std::string> RequiredString(const json& j, const std::string& field) {
  auto it = j.find(field);
  if (it == j.end()) return InvalidArgument("Missing field: " + field);
  if (!it->is_string()) return InvalidArgument("Field " + field + " must be a string");
  return it->get<std::string>();
}

// Absent: nullopt; null: nullopt when `nullable`, else an error.
Result<std::optional<std::string>> OptionalString(const json& j, const std::string& field,
                                                  bool nullable) {
  auto it = j.find(field);
  if (it == j.end() || (nullable && it->is_null())) return std::optional<std::string>{};
  if (!it->is_string()) return InvalidArgument("Field " + field + " must be a string");
  return std::optional<std::string>(it->get<std::string>());
}

// Number of UTF-8 code points (the input is valid UTF-8: the JSON parser checks).
size_t CodePoints(std::string_view s) {
  return static_cast<size_t>(
      std::count_if(s.begin(), s.end(), [](char c) { return (c & 0xC0) != 0x80; }));
}

bool IsLower(char c) { return c >= 'a' && c <= 'z'; }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }

template <typename T>
Result<Patch<T>> DecodePatch(const json& j, const std::string& field, bool nullable,
                             Status (*validate)(std::string_view)) {
  Patch<T> p;
  auto it = j.find(field);
  if (it == j.end()) return p;
  p.present = true;
  if (it->is_null()) {
    if (!nullable) return InvalidArgument(field + " cannot be null");
    return p;
  }
  if (!it->is_string()) return InvalidArgument("Field " + field + " must be a string");
  std::string v = it->get<std::string>();
  if (auto s = validate(v); !s.ok()) return s.error();
  p.value = std::move(v);
  return p;
}

}  // namespace

Status ValidateAccount(std::string_view account) {
  bool ok = !account.empty() && account.size() <= 32 && IsLower(account[0]) &&
            std::all_of(account.begin(), account.end(), [](char c) {
              return IsLower(c) || IsDigit(c) || c == '_' || c == '.' || c == '-';
            });
  if (ok) return Status::Ok();
  return InvalidArgument(
      "account must be 1-32 characters of a-z, 0-9, '_', '.' or '-', starting with a letter");
}

Status ValidatePassword(std::string_view field, std::string_view password) {
  size_t n = CodePoints(password);
  if (n >= 8 && n <= 128) return Status::Ok();
  return InvalidArgument(std::string(field) + " must be 8-128 characters");
}

Status ValidateNickname(std::string_view nickname) {
  size_t n = CodePoints(nickname);
  bool control = std::any_of(nickname.begin(), nickname.end(),
                             [](char c) { return static_cast<unsigned char>(c) < 0x20; });
  if (n >= 1 && n <= 64 && !control) return Status::Ok();
  return InvalidArgument("nickname must be 1-64 characters without control characters");
}

Status ValidateEmail(std::string_view email) {
  auto invalid = [] {
    return InvalidArgument("email must be a valid address like name@example.org");
  };
  size_t at = email.find('@');
  if (email.size() > 254 || at == std::string_view::npos || at == 0 || at > 64 ||
      email.find('@', at + 1) != std::string_view::npos) {
    return invalid();
  }
  std::string_view local = email.substr(0, at);
  std::string_view domain = email.substr(at + 1);
  auto local_ok = [](char c) {
    return IsLower(c) || (c >= 'A' && c <= 'Z') || IsDigit(c) ||
           std::string_view("!#$%&'*+/=?^_`{|}~.-").find(c) != std::string_view::npos;
  };
  auto domain_ok = [](char c) {
    return IsLower(c) || (c >= 'A' && c <= 'Z') || IsDigit(c) || c == '-' || c == '.';
  };
  if (!std::all_of(local.begin(), local.end(), local_ok) || local.front() == '.' ||
      local.back() == '.' || local.find("..") != std::string_view::npos) {
    return invalid();
  }
  size_t dot = domain.rfind('.');
  if (domain.empty() || !std::all_of(domain.begin(), domain.end(), domain_ok) ||
      dot == std::string_view::npos || dot == 0 || dot + 3 > domain.size() ||
      domain.front() == '-' || domain.find("..") != std::string_view::npos) {
    return invalid();
  }
  return Status::Ok();
}

Status ValidatePhone(std::string_view phone) {
  bool chars = std::all_of(phone.begin(), phone.end(),
                           [](char c) { return IsDigit(c) || c == ' ' || c == '+' || c == '-'; });
  bool digit = std::any_of(phone.begin(), phone.end(), IsDigit);
  if (chars && digit && phone.size() >= 5 && phone.size() <= 20) return Status::Ok();
  return InvalidArgument("phone must be 5-20 characters of digits, spaces, '+' or '-'");
}

Result<LoginRequest> DecodeLogin(std::string_view body) {
  auto j = ParseObject(body, {"account", "password"});
  if (!j.ok()) return j.error();
  auto account = RequiredString(*j, "account");
  if (!account.ok()) return account.error();
  auto password = RequiredString(*j, "password");
  if (!password.ok()) return password.error();
  if (account->empty()) return InvalidArgument("account must not be empty");
  if (password->empty()) return InvalidArgument("password must not be empty");
  return LoginRequest{std::move(account).value(), std::move(password).value()};
}

Result<RegisterRequest> DecodeRegister(std::string_view body) {
  auto j = ParseObject(body, {"account", "password", "nickname", "email", "phone", "role"});
  if (!j.ok()) return j.error();
  RegisterRequest r;
  auto account = RequiredString(*j, "account");
  if (!account.ok()) return account.error();
  if (auto s = ValidateAccount(*account); !s.ok()) return s.error();
  r.account = std::move(account).value();
  auto password = RequiredString(*j, "password");
  if (!password.ok()) return password.error();
  if (auto s = ValidatePassword("password", *password); !s.ok()) return s.error();
  r.password = std::move(password).value();
  struct Field {
    const char* name;
    std::optional<std::string>* out;
    Status (*validate)(std::string_view);
  };
  for (const Field& f :
       {Field{"nickname", &r.nickname, ValidateNickname}, Field{"email", &r.email, ValidateEmail},
        Field{"phone", &r.phone, ValidatePhone}}) {
    auto v = OptionalString(*j, f.name, /*nullable=*/true);
    if (!v.ok()) return v.error();
    if (*v) {
      if (auto s = f.validate(**v); !s.ok()) return s.error();
    }
    *f.out = std::move(v).value();
  }
  auto role = OptionalString(*j, "role", /*nullable=*/false);
  if (!role.ok()) return role.error();
  if (*role) {
    if (**role != "user" && **role != "admin") {
      return InvalidArgument("role must be \"user\" or \"admin\"");
    }
    r.role = **role;
  }
  return r;
}

Result<ProfileRequest> DecodeProfile(std::string_view body) {
  auto j = ParseObject(body, {"nickname", "email", "phone"});
  if (!j.ok()) return j.error();
  ProfileRequest r;
  auto nickname = DecodePatch<std::string>(*j, "nickname", false, ValidateNickname);
  if (!nickname.ok()) return nickname.error();
  auto email = DecodePatch<std::string>(*j, "email", true, ValidateEmail);
  if (!email.ok()) return email.error();
  auto phone = DecodePatch<std::string>(*j, "phone", true, ValidatePhone);
  if (!phone.ok()) return phone.error();
  r.nickname = std::move(nickname).value();
  r.email = std::move(email).value();
  r.phone = std::move(phone).value();
  return r;
}

Result<SetPasswordRequest> DecodeSetPassword(std::string_view body) {
  auto j = ParseObject(body, {"old_password", "new_password"});
  if (!j.ok()) return j.error();
  auto old_pw = RequiredString(*j, "old_password");
  if (!old_pw.ok()) return old_pw.error();
  auto new_pw = RequiredString(*j, "new_password");
  if (!new_pw.ok()) return new_pw.error();
  if (auto s = ValidatePassword("new_password", *new_pw); !s.ok()) return s.error();
  return SetPasswordRequest{std::move(old_pw).value(), std::move(new_pw).value()};
}

Result<ResetPasswordRequest> DecodeResetPassword(std::string_view body) {
  auto j = ParseObject(body, {"password"});
  if (!j.ok()) return j.error();
  auto pw = RequiredString(*j, "password");
  if (!pw.ok()) return pw.error();
  if (auto s = ValidatePassword("password", *pw); !s.ok()) return s.error();
  return ResetPasswordRequest{std::move(pw).value()};
}

Result<AddMachineRequest> DecodeAddMachine(std::string_view body) {
  auto j = ParseObject(body, {"id"});
  if (!j.ok()) return j.error();
  auto id = RequiredString(*j, "id");
  if (!id.ok()) return id.error();
  return AddMachineRequest{std::move(id).value()};
}

Result<int64_t> IdFromJson(std::string_view field, const json& value) {
  const auto* u = value.get_ptr<const json::number_unsigned_t*>();
  const auto* i = value.get_ptr<const json::number_integer_t*>();
  if (u != nullptr && *u >= 1 && *u <= static_cast<uint64_t>(INT64_MAX)) {
    return static_cast<int64_t>(*u);
  }
  if (i != nullptr && *i >= 1) return *i;
  return InvalidArgument("Field " + std::string(field) + " must be a positive integer");
}

Result<int64_t> ParseId(std::string_view field, std::string_view text) {
  int64_t id = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (ec != std::errc() || end != text.data() + text.size() || id < 1 || text[0] == '+') {
    return InvalidArgument(std::string(field) + " must be a positive integer");
  }
  return id;
}

Result<containers::CreateRequest> CreateContainerFromJson(const json& data) {
  if (!data.is_object()) return InvalidArgument("data must be an object");
  containers::CreateRequest r;
  auto machine = RequiredString(data, "machine_id");
  if (!machine.ok()) return machine.error();
  r.machine_id = std::move(machine).value();
  auto image = data.find("image_id");
  if (image == data.end()) return InvalidArgument("Missing field: image_id");
  auto image_id = IdFromJson("image_id", *image);
  if (!image_id.ok()) return image_id.error();
  r.image_id = *image_id;
  auto name = OptionalString(data, "name", /*nullable=*/true);
  if (!name.ok()) return name.error();
  r.name = std::move(name).value();
  auto port = data.find("port");
  if (port == data.end() || port->is_null()) return r;
  const json ports = port->is_array() ? *port : json::array({*port});
  for (const auto& p : ports) {
    const auto* n = p.get_ptr<const json::number_unsigned_t*>();
    if (n == nullptr || *n < 1 || *n > 65535) {
      return InvalidArgument("Field port must be a port number 1-65535 or an array of them");
    }
    r.ports.push_back(static_cast<int>(*n));
  }
  return r;
}

Result<containers::CreateRequest> DecodeCreateContainer(std::string_view body) {
  auto j = ParseObject(body, {"machine_id", "image_id", "port", "name"});
  if (!j.ok()) return j.error();
  return CreateContainerFromJson(*j);
}

Result<containers::NewImage> DecodeAddImage(std::string_view body) {
  auto j = ParseObject(body, {"name", "image", "description"});
  if (!j.ok()) return j.error();
  auto name = RequiredString(*j, "name");
  if (!name.ok()) return name.error();
  auto image = RequiredString(*j, "image");
  if (!image.ok()) return image.error();
  auto description = OptionalString(*j, "description", /*nullable=*/true);
  if (!description.ok()) return description.error();
  return containers::NewImage{std::move(name).value(), std::move(image).value(),
                              description->value_or("")};
}

Result<tasks::TaskRequest> DecodeTaskRequest(std::string_view body) {
  auto j = ParseObject(body,
                       {"machine_id", "containername", "command", "duration", "gpu_count", "gpus"});
  if (!j.ok()) return j.error();
  tasks::TaskRequest r;
  for (auto [field, out] :
       {std::pair{"machine_id", &r.machine_id}, std::pair{"containername", &r.containername},
        std::pair{"command", &r.command}}) {
    auto v = RequiredString(*j, field);
    if (!v.ok()) return v.error();
    if (v->empty()) return InvalidArgument(std::string(field) + " must not be empty");
    *out = std::move(v).value();
  }
  if (r.command.size() > 16384) return InvalidArgument("command must be at most 16384 bytes");
  auto d = j->find("duration");
  if (d == j->end()) return InvalidArgument("Missing field: duration");
  if (d->is_number()) {
    double hours = d->get<double>();
    if (!(hours > 0) || hours > 1e6) return InvalidArgument("duration must be greater than 0");
    r.duration = std::chrono::milliseconds(static_cast<int64_t>(hours * 3600 * 1000));
  } else if (d->is_string()) {
    auto parsed = ParseDuration(d->get<std::string>(), std::chrono::hours(1));
    if (!parsed.ok()) {
      return InvalidArgument(
          "duration must be a number of hours or a string like \"90m\", \"1h30m\", \"2d\"");
    }
    r.duration = *parsed;
  } else {
    return InvalidArgument("Field duration must be a number of hours or a string");
  }
  if (r.duration.count() <= 0) return InvalidArgument("duration must be greater than 0");
  auto count = j->find("gpu_count");
  auto gpus = j->find("gpus");
  bool has_count = count != j->end() && !count->is_null();
  bool has_gpus = gpus != j->end() && !gpus->is_null();
  if (has_count == has_gpus)
    return InvalidArgument("Exactly one of gpu_count and gpus is required");
  if (has_count) {
    const auto* n = count->get_ptr<const json::number_unsigned_t*>();
    if (n == nullptr || *n < 1 || *n > 4096) {
      return InvalidArgument("Field gpu_count must be a positive integer");
    }
    r.gpu_count = static_cast<int>(*n);
    return r;
  }
  if (!gpus->is_array() || gpus->empty() || gpus->size() > 4096) {
    return InvalidArgument("Field gpus must be a non-empty array of GPU indices");
  }
  std::vector<int> list;
  for (const auto& g : *gpus) {
    const auto* n = g.get_ptr<const json::number_unsigned_t*>();
    if (n == nullptr || *n > 4095) {
      return InvalidArgument("Field gpus must be a non-empty array of GPU indices");
    }
    if (std::find(list.begin(), list.end(), static_cast<int>(*n)) != list.end()) {
      return InvalidArgument("Field gpus must not repeat a GPU: " + std::to_string(*n));
    }
    list.push_back(static_cast<int>(*n));
  }
  r.gpus = std::move(list);
  return r;
}

Result<tasks::CancelRequest> DecodeCancelTask(std::string_view body) {
  auto j = ParseObject(body, {"task_id", "taskId", "machine_id"});
  if (!j.ok()) return j.error();
  bool snake = j->contains("task_id");
  bool camel = j->contains("taskId");
  if (!snake && !camel) return InvalidArgument("Missing field: task_id");
  if (snake && camel) return InvalidArgument("Give only one of task_id and taskId");
  const char* field = snake ? "task_id" : "taskId";
  auto id = IdFromJson(field, (*j)[field]);
  if (!id.ok()) return id.error();
  auto machine = RequiredString(*j, "machine_id");
  if (!machine.ok()) return machine.error();
  return tasks::CancelRequest{*id, std::move(machine).value()};
}

}  // namespace gpuhub::api
