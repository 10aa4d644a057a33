// /api/machines/info and /api/admin/machines*.
#include <nlohmann/json.hpp>

#include "common/time_util.hpp"
#include "server/api/api.hpp"
#include "server/api/handler_util.hpp"
#include "server/api/requests.hpp"
#include "server/http/gzip.hpp"

namespace gpuhub::api {

using boost::asio::awaitable;
using http::Context;
using http::Response;
using http::bhttp::verb;

namespace {

// Whether the request accepts a gzip-coded answer (all Accept-Encoding fields).
bool AcceptsGzip(const http::Request& req) {
  auto [first, last] = req.equal_range(http::bhttp::field::accept_encoding);
  if (first == last) return false;
  if (std::next(first) == last) return http::AcceptsGzip(http::Sv(first->value()));
  std::string joined;
  for (auto it = first; it != last; ++it) {
    if (!joined.empty()) joined += ',';
    joined += http::Sv(it->value());
  }
  return http::AcceptsGzip(joined);
}

Response TokenResponse(const std::string& id, const std::string& token) {
  return http::JsonResponse(http::Status::ok, {{"id", id}, {"agent_token", token}});
}

}  // namespace

void AddMachineRoutes(http::Router& router, const ApiDeps& deps) {
  accounts::Accounts& accounts = deps.accounts;
  machines::MachineRegistry& machines = deps.machines;
  constexpr bool kAdmin = true;

  router.Add(
      verb::get, "/api/machines/info",
      WithAuth(accounts, [&](Context& ctx, const accounts::Principal&) -> awaitable<Response> {
        // Shared with the registry's cache, not copied: the
        // document is large (1.6 MB for 1,000 machines).
        auto doc = machines.Info();
        Response res{http::Status::ok, 11};
        res.set(http::bhttp::field::content_type, "application/json");
        res.set(http::bhttp::field::cache_control, "no-store");
        res.set(http::bhttp::field::vary, "Accept-Encoding");
        if (AcceptsGzip(ctx.request)) {
          res.set(http::bhttp::field::content_encoding, "gzip");
          res.body().Share(std::move(doc.gzip));
        } else {
          res.body().Share(std::move(doc.json));
        }
        co_return res;
      }));

  router.Add(
      verb::get, "/api/admin/machines",
      WithAuth(
          accounts,
          [&](Context&, const accounts::Principal&) -> awaitable<Response> {
            nlohmann::json out = nlohmann::json::array();
            for (const auto& m : machines.List()) {
              out.push_back({{"id", m.id},
                             {"ip", m.ip},
                             {"created_at", FormatIso8601(m.created_at)},
                             {"last_seen", m.last_seen ? nlohmann::json(FormatIso8601(*m.last_seen))
                                                       : nlohmann::json(nullptr)}});
            }
            co_return http::JsonResponse(http::Status::ok, out);
          },
          kAdmin));

  router.Add(verb::post, "/api/admin/machines",
             WithAuth(
                 accounts,
                 [&](Context& ctx, const accounts::Principal&) -> awaitable<Response> {
                   auto req = DecodeAddMachine(ctx.request.body());
                   if (!req.ok()) co_return http::ErrorResponse(req.error());
                   auto token = machines.Add(req->id);
                   if (!token.ok()) co_return http::ErrorResponse(token.error());
                   co_return TokenResponse(req->id, *token);
                 },
                 kAdmin));

  router.Add(verb::delete_, "/api/admin/machines/{id}",
             WithAuth(
                 accounts,
                 [&](Context& ctx, const accounts::Principal&) -> awaitable<Response> {
                   if (auto s = machines.Remove(ctx.params[0]); !s.ok()) {
                     co_return http::ErrorResponse(s.error());
                   }
                   co_return OkMessage("Deleted");
                 },
                 kAdmin));

  router.Add(verb::post, "/api/admin/machines/{id}/token",
             WithAuth(
                 accounts,
                 [&](Context& ctx, const accounts::Principal&) -> awaitable<Response> {
                   auto token = machines.RotateToken(ctx.params[0]);
                   if (!token.ok()) co_return http::ErrorResponse(token.error());
                   co_return TokenResponse(ctx.params[0], *token);
                 },
                 kAdmin));
}

}  // namespace gpuhub::api
