// /api/admin/users*: list, delete, reset password.
#include <nlohmann/json.hpp>

#include "server/api/api.hpp"
#include "server/api/handler_util.hpp"
#include "server/api/requests.hpp"
#include "server/http/blocking.hpp"

namespace gpuhub::api {

using boost::asio::awaitable;
using http::Context;
using http::Response;
using http::bhttp::verb;

void AddAdminRoutes(http::Router& router, const ApiDeps& deps) {
  accounts::Accounts& accounts = deps.accounts;
  boost::asio::thread_pool& pool = deps.pool;
  constexpr bool kAdmin = true;

  router.Add(verb::get, "/api/admin/users",
             WithAuth(
                 accounts,
                 [&](Context&, const accounts::Principal&) -> awaitable<Response> {
                   nlohmann::json out = nlohmann::json::array();
                   for (const auto& u : accounts.ListUsers()) out.push_back(UserInfoJson(u));
                   co_return http::JsonResponse(http::Status::ok, out);
                 },
                 kAdmin));

  router.Add(verb::delete_, "/api/admin/users/{account}",
             WithAuth(
                 accounts,
                 [&](Context& ctx, const accounts::Principal&) -> awaitable<Response> {
                   if (auto s = accounts.DeleteUser(ctx.params[0]); !s.ok()) {
                     co_return http::ErrorResponse(s.error());
                   }
                   co_return OkMessage("Deleted");
                 },
                 kAdmin));

  router.Add(verb::post, "/api/admin/users/{account}/password",
             WithAuth(
                 accounts,
                 [&](Context& ctx, const accounts::Principal&) -> awaitable<Response> {
                   auto req = DecodeResetPassword(ctx.request.body());
                   if (!req.ok()) co_return http::ErrorResponse(req.error());
                   auto s = co_await http::RunBlocking(
                       pool, [&] { return accounts.ResetPassword(ctx.params[0], req->password); });
                   if (!s.ok()) co_return http::ErrorResponse(s.error());
                   co_return OkMessage("Password updated");
                 },
                 kAdmin));
}

}  // namespace gpuhub::api
