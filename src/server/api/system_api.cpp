// /healthz and /metrics (Prometheus text format).
#include <nlohmann/json.hpp>

#include "server/api/api.hpp"

namespace gpuhub::api {

using boost::asio::awaitable;
using http::Context;
using http::Response;
using http::bhttp::verb;

void AddSystemRoutes(http::Router& router, const ApiDeps& deps) {
  router.Add(verb::get, "/healthz", [&deps](Context&) -> awaitable<Response> {
    if (deps.server && deps.server->ShuttingDown()) {
      co_return http::MessageResponse(http::Status::service_unavailable, "Shutting down");
    }
    co_return http::JsonResponse(http::Status::ok, {{"status", "ok"}});
  });

  router.Add(verb::get, "/metrics", [&deps](Context&) -> awaitable<Response> {
    std::string out;
    auto metric = [&out](const char* name, const char* type, const char* help, auto value) {
      out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" +
             name + " " + std::to_string(value) + "\n";
    };
    if (deps.server) {
      const auto& s = deps.server->Stats();
      metric("gpuhub_http_connections_total", "counter", "Accepted connections.",
             s.connections_total.load());
      metric("gpuhub_http_connections_open", "gauge", "Open connections.",
             s.connections_open.load());
      metric("gpuhub_http_requests_total", "counter", "Requests read.", s.requests_total.load());
      out +=
          "# HELP gpuhub_http_responses_total Responses sent by status class.\n"
          "# TYPE gpuhub_http_responses_total counter\n";
      out += "gpuhub_http_responses_total{class=\"2xx\"} " + std::to_string(s.responses_2xx) + "\n";
      out += "gpuhub_http_responses_total{class=\"4xx\"} " + std::to_string(s.responses_4xx) + "\n";
      out += "gpuhub_http_responses_total{class=\"5xx\"} " + std::to_string(s.responses_5xx) + "\n";
    }
    metric("gpuhub_users", "gauge", "Registered accounts.", deps.accounts.ListUsers().size());
    metric("gpuhub_uptime_seconds", "gauge", "Seconds since start.",
           std::chrono::duration_cast<std::chrono::seconds>(deps.clock.Now() - deps.started_at)
               .count());
    Response res{http::Status::ok, 11};
    res.set(http::bhttp::field::content_type, "text/plain; version=0.0.4");
    res.body() = std::move(out);
    co_return res;
  });
}

}  // namespace gpuhub::api
