// /api/task/*: GPU leases (contract section 7).
#include <nlohmann/json.hpp>

#include "common/time_util.hpp"
#include "server/api/api.hpp"
#include "server/api/handler_util.hpp"
#include "server/api/requests.hpp"

namespace gpuhub::api {

using boost::asio::awaitable;
using http::Context;
using http::Response;
using http::bhttp::verb;

namespace {

nlohmann::json SubmittedJson(const tasks::Submitted& s) {
  const store::Task& t = s.task;
  return {{"taskId", t.id},
          {"status", t.status},
          {"gpu_ids", t.gpu_ids},
          {"start_time",
           t.start_time ? nlohmann::json(FormatIso8601(*t.start_time)) : nlohmann::json(nullptr)},
          {"estimated_start", s.estimated_start ? nlohmann::json(FormatIso8601(*s.estimated_start))
                                                : nlohmann::json(nullptr)}};
}

// "status=all" in a query string.
bool WantsAll(std::string_view query) {
  size_t at = query.find("status=all");
  while (at != std::string_view::npos) {
    bool starts = at == 0 || query[at - 1] == '&';
    size_t end = at + 10;
    if (starts && (end == query.size() || query[end] == '&')) return true;
    at = query.find("status=all", at + 1);
  }
  return false;
}

Response TaskList(tasks::TaskService& service, const Result<std::vector<store::Task>>& list) {
  if (!list.ok()) return http::ErrorResponse(list.error());
  nlohmann::json out = nlohmann::json::array();
  for (const auto& t : *list) out.push_back(service.TaskJson(t));
  return http::JsonResponse(http::Status::ok, out);
}

}  // namespace

void AddTaskRoutes(http::Router& router, const ApiDeps& deps) {
  accounts::Accounts& accounts = deps.accounts;
  tasks::TaskService& service = *deps.tasks;

  auto submit =
      WithAuth(accounts, [&](Context& ctx, const accounts::Principal& who) -> awaitable<Response> {
        auto req = DecodeTaskRequest(ctx.request.body());
        if (!req.ok()) co_return http::ErrorResponse(req.error());
        auto submitted = co_await service.Submit(who, *req);
        if (!submitted.ok()) co_return http::ErrorResponse(submitted.error());
        co_return http::JsonResponse(http::Status::ok, SubmittedJson(*submitted));
      });
  router.Add(verb::post, "/api/task/request", submit);
  router.Add(verb::put, "/api/task/request", submit);

  router.Add(
      verb::post, "/api/task/cancel",
      WithAuth(accounts, [&](Context& ctx, const accounts::Principal& who) -> awaitable<Response> {
        auto req = DecodeCancelTask(ctx.request.body());
        if (!req.ok()) co_return http::ErrorResponse(req.error());
        auto t = service.Cancel(who, *req);
        if (!t.ok()) co_return http::ErrorResponse(t.error());
        co_return http::JsonResponse(http::Status::ok, {{"taskId", t->id}, {"status", t->status}});
      }));

  router.Add(
      verb::get, "/api/task/user/{account}",
      WithAuth(accounts, [&](Context& ctx, const accounts::Principal&) -> awaitable<Response> {
        co_return TaskList(service, service.ListForUser(ctx.params[0], WantsAll(ctx.query)));
      }));

  router.Add(
      verb::get, "/api/task/machine/{id}",
      WithAuth(accounts, [&](Context& ctx, const accounts::Principal&) -> awaitable<Response> {
        co_return TaskList(service, service.ListForMachine(ctx.params[0], WantsAll(ctx.query)));
      }));

  router.Add(
      verb::get, "/api/task/{id}/log",
      WithAuth(accounts, [&](Context& ctx, const accounts::Principal& who) -> awaitable<Response> {
        auto id = ParseId("task id", ctx.params[0]);
        if (!id.ok()) co_return http::ErrorResponse(id.error());
        auto log = service.Log(who, *id);
        if (!log.ok()) co_return http::ErrorResponse(log.error());
        Response res{http::Status::ok, 11};
        res.set(http::bhttp::field::content_type, "text/plain; charset=utf-8");
        res.set(http::bhttp::field::cache_control, "no-store");
        res.body() = std::move(log).value();
        co_return res;
      }));
}

}  // namespace gpuhub::api
