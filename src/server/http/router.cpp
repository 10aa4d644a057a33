#include "server/http/router.hpp"

#include <spdlog/spdlog.h>

#include <exception>

#include "server/http/blocking.hpp"

namespace gpuhub::http {
namespace {

// The non-empty '/'-separated segments of a path, one at a time.
class PathSegments {
 public:
  explicit PathSegments(std::string_view path) : rest_(path) {}
  // The next segment; false at the end.
  bool Next(std::string_view& segment) {
    size_t i = rest_.find_first_not_of('/');
    if (i == std::string_view::npos) return false;
    rest_.remove_prefix(i);
    size_t j = rest_.find('/');
    segment = rest_.substr(0, j);
    rest_.remove_prefix(segment.size());
    return true;
  }

 private:
  std::string_view rest_;
};

size_t CountSegments(std::string_view path) {
  size_t n = 0;
  std::string_view s;
  for (PathSegments it(path); it.Next(s);) ++n;
  return n;
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
  std::vector<Segment> segments;
  std::string_view s;
  for (PathSegments it(pattern); it.Next(s);) {
    segments.push_back(s.starts_with('{') ? Segment{"", true} : Segment{std::string(s), false});
  }
  auto same = [](const Segment& a, const Segment& b) {
    return a.capture == b.capture && a.text == b.text;
  };
  for (auto& r : routes_) {
    if (std::equal(r.segments.begin(), r.segments.end(), segments.begin(), segments.end(), same)) {
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

Router::Match Router::Find(std::string_view target) const {
  std::string_view path = SplitTarget(target).first;
  size_t count = CountSegments(path);
  Match match;
  for (const auto& r : routes_) {
    if (r.segments.size() != count) continue;
    PathSegments parts(path);
    std::string_view part;
    bool ok = true;
    for (size_t i = 0; i < count && ok; ++i) {
      parts.Next(part);
      const Segment& seg = r.segments[i];
      if (!seg.capture) {
        ok = seg.text == part;
        continue;
      }
      auto decoded = PercentDecode(part);
      ok = decoded.has_value();
      if (ok) match.params_.push_back(std::move(*decoded));
    }
    if (ok) {
      match.route_ = &r;
      return match;
    }
    match.params_.clear();
  }
  return match;
}

size_t Router::Match::BodyLimit(size_t fallback) const {
  return route_ && route_->body_limit ? route_->body_limit : fallback;
}

size_t Router::BodyLimit(std::string_view target, size_t fallback) const {
  return Find(target).BodyLimit(fallback);
}

boost::asio::awaitable<Response> Router::Dispatch(const Request& request) const {
  return Dispatch(request, Find(Sv(request.target())));
}

boost::asio::awaitable<Response> Router::Dispatch(const Request& request, Match match) const {
  auto [path, query] = SplitTarget(Sv(request.target()));
  const Route* route = match.route_;
  const Handler* handler = nullptr;
  if (route) {
    auto it = route->handlers.find(request.method());
    if (it != route->handlers.end()) handler = &it->second;
  } else if (fallback_ && !path.starts_with("/api/") && path != "/api" && path != "/ws" &&
             !path.starts_with("/ws/")) {
    handler = &fallback_;
  } else {
    co_return MessageResponse(Status::not_found, "Not found");
  }
  if (!handler) {
    std::string allow;
    for (const auto& [verb, h] : route->handlers) {
      if (!allow.empty()) allow += ", ";
      allow += std::string(bhttp::to_string(verb));
    }
    Response res = MessageResponse(Status::method_not_allowed, "Method not allowed");
    res.set(bhttp::field::allow, allow);
    co_return res;
  }
  Context ctx{request, std::move(match.params_), query};
  std::optional<std::chrono::seconds> overloaded;
  try {
    co_return co_await (*handler)(ctx);
  } catch (const Overloaded& e) {
    overloaded = e.retry_after();
  } catch (const std::exception& e) {
    spdlog::error("handler for {} {} threw: {}", std::string(request.method_string()),
                  std::string(path), e.what());
  }
  if (overloaded) {
    Response res =
        MessageResponse(Status::service_unavailable,
                        "Server busy; retry in " + std::to_string(overloaded->count()) + " s");
    res.set(bhttp::field::retry_after, std::to_string(overloaded->count()));
    co_return res;
  }
  co_return MessageResponse(Status::internal_server_error, "Internal server error");
}

}  // namespace gpuhub::http
