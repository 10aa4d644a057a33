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

http::Response OkMessage(std::string_view message) {
  return http::MessageResponse(http::Status::ok, message);
}

}  // namespace gpuhub::api
