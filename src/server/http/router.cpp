#include "server/http/router.hpp"

#include <spdlog/spdlog.h>

#include <exception>

namespace gpuhub::http {
namespace {

std::vector<std::string_view> SplitPath(std::string_view path) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < path.size()) {
    if (path[i] == '/') {
      ++i;
      continue;
    }
    size_t j = path.find('/', i);
    if (j == std::string_view::npos) j = path.size();
    out.push_back(path.substr(i, j - i));
    i = j;
  }
  return out;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::pair<std::string_view, std::string_view> SplitTarget(std::string_view target) {
  size_t q = target.find('?');
  if (q == std::string_view::npos) return {target, {}};
  return {target.substr(0, q), target.substr(q + 1)};
}

std::optional<std::string> PercentDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] != '%') {
      out.push_back(s[i]);
      continue;
    }
    if (i + 2 >= s.size()) return std::nullopt;
    int hi = HexValue(s[i + 1]), lo = HexValue(s[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

void Router::Add(bhttp::verb method, std::string_view pattern, Handler handler, size_t body_limit) {
  std::vector<std::string> segments;
  for (auto s : SplitPath(pattern)) {
    segments.emplace_back(s.starts_with('{') ? std::string("{}") : std::string(s));
  }
  for (auto& r : routes_) {
    if (r.segments == segments) {
      r.handlers[method] = std::move(handler);
      if (body_limit) r.body_limit = body_limit;
      return;
    }
  }
  Route r;
  r.segments = std::move(segments);
  r.handlers[method] = std::move(handler);
  r.body_limit = body_limit;
  routes_.push_back(std::move(r));
}

const Router::Route* Router::Match(std::string_view path, std::vector<std::string>* params) const {
  auto parts = SplitPath(path);
  for (const auto& r : routes_) {
    if (r.segments.size() != parts.size()) continue;
    std::vector<std::string> captured;
    bool ok = true;
    for (size_t i = 0; i < parts.size() && ok; ++i) {
      if (r.segments[i] == "{}") {
        auto decoded = PercentDecode(parts[i]);
        ok = decoded.has_value();
        if (ok) captured.push_back(std::move(*decoded));
      } else {
        ok = r.segments[i] == parts[i];
      }
    }
    if (ok) {
      if (params) *params = std::move(captured);
      return &r;
    }
  }
  return nullptr;
}

size_t Router::BodyLimit(std::string_view target, size_t fallback) const {
  const Route* r = Match(SplitTarget(target).first, nullptr);
  return r && r->body_limit ? r->body_limit : fallback;
}

boost::asio::awaitable<Response> Router::Dispatch(const Request& request) const {
  auto [path, query] = SplitTarget(Sv(request.target()));
  std::vector<std::string> params;
  const Route* route = Match(path, &params);
  if (!route) co_return MessageResponse(Status::not_found, "Not found");
  auto it = route->handlers.find(request.method());
  if (it == route->handlers.end()) {
    std::string allow;
    for (const auto& [verb, h] : route->handlers) {
      if (!allow.empty()) allow += ", ";
      allow += std::string(bhttp::to_string(verb));
    }
    Response res = MessageResponse(Status::method_not_allowed, "Method not allowed");
    res.set(bhttp::field::allow, allow);
    co_return res;
  }
  Context ctx{request, std::move(params), query};
  try {
    co_return co_await it->second(ctx);
  } catch (const std::exception& e) {
    spdlog::error("handler for {} {} threw: {}", std::string(request.method_string()),
                  std::string(path), e.what());
  }
  co_return MessageResponse(Status::internal_server_error, "Internal server error");
}

}  // namespace gpuhub::http
