// /api/auth/*: login, register, logout, session refresh.
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

void AddAuthRoutes(http::Router& router, const ApiDeps& deps) {
  accounts::Accounts& accounts = deps.accounts;
  boost::asio::thread_pool& pool = deps.pool;

  router.Add(verb::post, "/api/auth/login", [&](Context& ctx) -> awaitable<Response> {
    auto req = DecodeLogin(ctx.request.body());
    if (!req.ok()) co_return http::ErrorResponse(req.error());
    if (auto wait = accounts.LoginRetryAfter(req->account)) {
      Response res = http::MessageResponse(
          http::Status::too_many_requests,
          "Too many failed login attempts; retry in " + std::to_string(wait->count()) + " s");
      res.set(http::bhttp::field::retry_after, std::to_string(wait->count()));
      co_return res;
    }
    auto token = co_await http::RunBlocking(
        pool, [&] { return accounts.Login(req->account, req->password); });
    if (!token.ok()) co_return http::ErrorResponse(token.error());
    co_return http::JsonResponse(http::Status::ok, {{"access_token", *token}});
  });

  router.Add(verb::post, "/api/auth/register",
             WithAuth(
                 accounts,
                 [&](Context& ctx, const accounts::Principal&) -> awaitable<Response> {
                   auto req = DecodeRegister(ctx.request.body());
                   if (!req.ok()) co_return http::ErrorResponse(req.error());
                   auto user =
                       co_await http::RunBlocking(pool, [&] { return accounts.Register(*req); });
                   if (!user.ok()) co_return http::ErrorResponse(user.error());
                   co_return http::JsonResponse(http::Status::ok,
                                                {{"id", user->id}, {"account", user->account}});
                 },
                 /*admin_only=*/true));

  auto logout =
      WithAuth(accounts, [&](Context&, const accounts::Principal& p) -> awaitable<Response> {
        if (auto s = accounts.Logout(p); !s.ok()) {
          co_return http::ErrorResponse(s.error());
        }
        co_return OkMessage("Logged out");
      });
  router.Add(verb::post, "/api/auth/logout", logout);
  router.Add(verb::get, "/api/auth/logout", logout);

  router.Add(
      verb::get, "/api/auth/session",
      WithAuth(accounts, [&](Context&, const accounts::Principal& p) -> awaitable<Response> {
        co_return http::JsonResponse(http::Status::ok, {{"access_token", accounts.Refresh(p)}});
      }));
}

}  // namespace gpuhub::api
