// /api/images, /api/admin/images*, /api/containers*: the REST twins of the
// browser WebSocket's container messages (contract sections 5 and 6).
#include <nlohmann/json.hpp>

#include "server/api/api.hpp"
#include "server/api/handler_util.hpp"
#include "server/api/requests.hpp"

namespace gpuhub::api {

using boost::asio::awaitable;
using http::Context;
using http::Response;
using http::bhttp::verb;
using Kind = proto::ContainerOp::Kind;

namespace {

Response ContainerResponse(const Result<store::Container>& c) {
  if (!c.ok()) return http::ErrorResponse(c.error());
  return http::JsonResponse(http::Status::ok, containers::ContainerJson(*c));
}

// "all=1" (or "all=true") in a query string.
bool WantsAll(std::string_view query) {
  for (std::string_view part : {"all=1", "all=true"}) {
    size_t at = query.find(part);
    while (at != std::string_view::npos) {
      bool starts = at == 0 || query[at - 1] == '&';
      bool ends = at + part.size() == query.size() || query[at + part.size()] == '&';
      if (starts && ends) return true;
      at = query.find(part, at + 1);
    }
  }
  return false;
}

}  // namespace

void AddContainerRoutes(http::Router& router, const ApiDeps& deps) {
  accounts::Accounts& accounts = deps.accounts;
  containers::ContainerService& service = *deps.containers;
  constexpr bool kAdmin = true;

  router.Add(verb::get, "/api/images",
             WithAuth(accounts, [&](Context&, const accounts::Principal&) -> awaitable<Response> {
               auto images = service.ListImages();
               if (!images.ok()) co_return http::ErrorResponse(images.error());
               nlohmann::json out = nlohmann::json::array();
               for (const auto& i : *images) out.push_back(containers::ImageJson(i));
               co_return http::JsonResponse(http::Status::ok, out);
             }));

  router.Add(verb::post, "/api/admin/images",
             WithAuth(
                 accounts,
                 [&](Context& ctx, const accounts::Principal&) -> awaitable<Response> {
                   auto req = DecodeAddImage(ctx.request.body());
                   if (!req.ok()) co_return http::ErrorResponse(req.error());
                   auto image = service.AddImage(*req);
                   if (!image.ok()) co_return http::ErrorResponse(image.error());
                   co_return http::JsonResponse(http::Status::ok, containers::ImageJson(*image));
                 },
                 kAdmin));

  router.Add(verb::delete_, "/api/admin/images/{id}",
             WithAuth(
                 accounts,
                 [&](Context& ctx, const accounts::Principal&) -> awaitable<Response> {
                   auto id = ParseId("image id", ctx.params[0]);
                   if (!id.ok()) co_return http::ErrorResponse(id.error());
                   if (auto s = service.RemoveImage(*id); !s.ok()) {
                     co_return http::ErrorResponse(s.error());
                   }
                   co_return OkMessage("Deleted");
                 },
                 kAdmin));

  router.Add(
      verb::get, "/api/containers",
      WithAuth(accounts, [&](Context& ctx, const accounts::Principal& who) -> awaitable<Response> {
        auto list = service.List(who, WantsAll(ctx.query));
        if (!list.ok()) co_return http::ErrorResponse(list.error());
        nlohmann::json out = nlohmann::json::array();
        for (const auto& c : *list) out.push_back(containers::ContainerJson(c));
        co_return http::JsonResponse(http::Status::ok, out);
      }));

  router.Add(
      verb::post, "/api/containers",
      WithAuth(accounts, [&](Context& ctx, const accounts::Principal& who) -> awaitable<Response> {
        auto req = DecodeCreateContainer(ctx.request.body());
        if (!req.ok()) co_return http::ErrorResponse(req.error());
        co_return ContainerResponse(co_await service.Create(who, std::move(req).value()));
      }));

  for (Kind kind : {Kind::kStart, Kind::kStop, Kind::kRestart}) {
    std::string pattern = "/api/containers/{id}/" + std::string(proto::OpName(kind));
    router.Add(verb::post, pattern,
               WithAuth(accounts,
                        [&service, kind](Context& ctx,
                                         const accounts::Principal& who) -> awaitable<Response> {
                          auto id = ParseId("container id", ctx.params[0]);
                          if (!id.ok()) co_return http::ErrorResponse(id.error());
                          co_return ContainerResponse(co_await service.Act(who, *id, kind));
                        }));
  }

  router.Add(
      verb::delete_, "/api/containers/{id}",
      WithAuth(accounts, [&](Context& ctx, const accounts::Principal& who) -> awaitable<Response> {
        auto id = ParseId("container id", ctx.params[0]);
        if (!id.ok()) co_return http::ErrorResponse(id.error());
        auto deleted = co_await service.Act(who, *id, Kind::kDelete);
        if (!deleted.ok()) co_return http::ErrorResponse(deleted.error());
        co_return OkMessage("Deleted");
      }));
}

}  // namespace gpuhub::api
