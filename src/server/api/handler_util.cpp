#include "server/api/handler_util.hpp"

namespace gpuhub::api {

http::Handler WithAuth(const accounts::Accounts& accounts, AuthedHandler handler, bool admin_only) {
  return [&accounts, handler = std::move(handler),
          admin_only](http::Context& ctx) -> boost::asio::awaitable<http::Response> {
    auto auth = accounts.Authenticate(http::Sv(ctx.request[http::bhttp::field::authorization]));
    if (auto* e = std::get_if<accounts::TokenError>(&auth)) {
      co_return http::MessageResponse(http::Status::unauthorized, accounts::TokenErrorMessage(*e));
    }
    const auto& principal = std::get<accounts::Principal>(auth);
    if (admin_only && !principal.IsAdmin()) {
      co_return http::MessageResponse(http::Status::forbidden, "Permission denied");
    }
    co_return co_await handler(ctx, principal);
  };
}

nlohmann::json UserInfoJson(const store::User& user) {
  auto optional = [](const std::optional<std::string>& v) {
    return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
  };
  nlohmann::json photo = nullptr;
  if (user.photo) {
    photo = "/api/user/photo/" + std::to_string(user.id) + "?v=" + user.photo->version;
  }
  return {{"id", user.id},
          {"account", user.account},
          {"nickname", user.nickname},
          {"email", optional(user.email)},
          {"phone", optional(user.phone)},
          {"photo", photo},
          {"role", user.role}};
}

std::string UserInfoText(const store::User& user) {
  auto optional = [](std::string& out, const std::optional<std::string>& v) {
    if (v) {
      http::AppendJsonString(out, *v);
    } else {
      out += "null";
    }
  };
  std::string out;
  out.reserve(128 + user.account.size() + user.nickname.size());
  // nlohmann::json keeps object keys sorted: the same order here.
  out += R"({"account":)";
  http::AppendJsonString(out, user.account);
  out += R"(,"email":)";
  optional(out, user.email);
  out += R"(,"id":)";
  out += std::to_string(user.id);
  out += R"(,"nickname":)";
  http::AppendJsonString(out, user.nickname);
  out += R"(,"phone":)";
  optional(out, user.phone);
  out += R"(,"photo":)";
  if (user.photo) {
    http::AppendJsonString(
        out, "/api/user/photo/" + std::to_string(user.id) + "?v=" + user.photo->version);
  } else {
    out += "null";
  }
  out += R"(,"role":)";
  http::AppendJsonString(out, user.role);
  out += '}';
  return out;
}

http::Response OkMessage(std::string_view message) {
  return http::MessageResponse(http::Status::ok, message);
}

}  // namespace gpuhub::api
