// Router: maps method and path to a handler coroutine.
//
// Paths are patterns of literal segments and "{name}" captures
// ("/api/admin/users/{account}/password"). An unknown path is 404 and a known
// path with another method is 405 with an Allow header, both with JSON
// bodies. Routes are added before the server starts; after that the router is
// read-only and thread-safe.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "server/http/message.hpp"

namespace gpuhub::http {

// What a handler gets: the request and the path's captured segments
// (percent-decoded), in pattern order.
struct Context {
  const Request& request;
  std::vector<std::string> params;
  std::string_view query;  // the target after '?', without it
};

using Handler = std::function<boost::asio::awaitable<Response>(Context&)>;

class Router {
  struct Route;

 public:
  // A request target matched against the routes: the server matches once,
  // after the header, learns the body limit from it and hands it to Dispatch.
  class Match {
   public:
    // The route's body limit, or `fallback` (unknown path, no limit of its own).
    size_t BodyLimit(size_t fallback) const;

   private:
    friend class Router;
    const Route* route_ = nullptr;
    std::vector<std::string> params_;  // percent-decoded captures
  };

  // Registers `handler` for `method` on `pattern`. `body_limit` overrides the
  // server's default request body limit for this route (0: the default).
  void Add(bhttp::verb method, std::string_view pattern, Handler handler, size_t body_limit = 0);

  // Answers requests whose path no route matches (the web UI's files),
  // instead of 404 Not found. Not consulted for paths under /api/ and /ws.
  void SetFallback(Handler handler) { fallback_ = std::move(handler); }

  // Matches a request target (path and query) against the routes.
  Match Find(std::string_view target) const;

  // The body limit for a request target (the route's own, or `fallback`):
  // Find(target).BodyLimit(fallback).
  size_t BodyLimit(std::string_view target, size_t fallback) const;

  // Runs the matching handler, or answers 404/405. A handler that throws gets
  // a logged 500, never a dropped connection; one that throws Overloaded
  // (blocking.hpp) gets 503 with Retry-After.
  boost::asio::awaitable<Response> Dispatch(const Request& request) const;
  // The same with the match of Find(request.target()) done already.
  boost::asio::awaitable<Response> Dispatch(const Request& request, Match match) const;

 private:
  struct Segment {
    std::string text;  // empty for a capture
    bool capture = false;
  };
  struct Route {
    std::vector<Segment> segments;
    std::map<bhttp::verb, Handler> handlers;
    size_t body_limit = 0;
  };

  std::vector<Route> routes_;
  Handler fallback_;
};

// Splits a target into path and query at the first '?'.
std::pair<std::string_view, std::string_view> SplitTarget(std::string_view target);

// Decodes %XX escapes; nullopt for a malformed escape.
std::optional<std::string> PercentDecode(std::string_view s);

}  // namespace gpuhub::http
