#include "cli/api.hpp"

#include "client/http.hpp"

namespace gpuhub::cli {
using nlohmann::json;

namespace {
constexpr auto kTimeout = std::chrono::seconds(120);  // container creation may pull an image

Error Refused(unsigned status, const std::string& body) {
  json j = json::parse(body, nullptr, false);
  std::string message = j.is_object() && j.contains("message") && j["message"].is_string()
                            ? j["message"].get<std::string>()
                            : "HTTP " + std::to_string(status);
  if (status == 401) {
    if (message == "Token Not Found") message = "Not logged in";
    return {ErrorCode::kUnauthenticated, message + "; run `gpuhub login` again"};
  }
  return {ErrorCode::kConflict, message};
}

Result<client::HttpResponse> Send(const Api& api, boost::beast::http::verb method,
                                  const std::string& target, const json& body) {
  client::HttpRequest req{method, target, body.is_null() ? "" : body.dump(), api.token()};
  auto res = client::Fetch(api.server(), std::move(req), kTimeout);
  if (!res.ok()) return res.error();
  if (res->status < 200 || res->status >= 300) return Refused(res->status, res->body);
  return res;
}
}  // namespace

int ExitCodeFor(const Error& error) {
  switch (error.code) {
    case ErrorCode::kUnavailable:
      return kExitUnreachable;
    case ErrorCode::kInvalidArgument:
      return kExitUsage;
    default:
      return kExitRefused;
  }
}

Result<client::Url> ParseServer(std::string_view text) {
  std::string url(text);
  if (url.find("://") == std::string::npos) url = "http://" + url;
  return client::ParseUrl(url, {"http", "https"}, "/");
}

Result<json> Api::Call(boost::beast::http::verb method, const std::string& target,
                       const json& body) const {
  auto res = Send(*this, method, target, body);
  if (!res.ok()) return res.error();
  if (res->body.empty()) return json(nullptr);
  json j = json::parse(res->body, nullptr, false);
  if (j.is_discarded()) return Error{ErrorCode::kInternal, "the server's answer is not JSON"};
  return j;
}

Result<std::string> Api::GetText(const std::string& target) const {
  auto res = Send(*this, boost::beast::http::verb::get, target, nullptr);
  if (!res.ok()) return res.error();
  return std::move(res->body);
}

}  // namespace gpuhub::cli
