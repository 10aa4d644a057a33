// Helpers shared by the API handlers: authentication wrappers and JSON views
// of domain objects. Thread-safe as the Accounts they use.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>

#include "server/accounts/accounts.hpp"
#include "server/http/router.hpp"

namespace gpuhub::api {

using AuthedHandler = std::function<boost::asio::awaitable<http::Response>(
    http::Context&, const accounts::Principal&)>;

// A handler that first authenticates the request (401 with the token error's
// exact message on failure) and, with `admin_only`, refuses non-admins with
// 403 "Permission denied".
http::Handler WithAuth(const accounts::Accounts& accounts, AuthedHandler handler,
                       bool admin_only = false);

// {"id","account","nickname","email","phone","photo","role"}.
nlohmann::json UserInfoJson(const store::User& user);
// The same as JSON text, exactly UserInfoJson(user).dump() (keys sorted,
// invalid UTF-8 replaced), written without building the json tree.
std::string UserInfoText(const store::User& user);

// 200 with {"message": message}.
http::Response OkMessage(std::string_view message);

}  // namespace gpuhub::api
