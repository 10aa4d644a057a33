#include "server/http/router.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_future.hpp>

namespace gpuhub::http {
namespace {

using boost::asio::awaitable;

Response Dispatch(const Router& router, bhttp::verb method, std::string target) {
  boost::asio::io_context ioc;
  Request req{method, target, 11};
  auto f = boost::asio::co_spawn(ioc, router.Dispatch(req), boost::asio::use_future);
  ioc.run();
  return f.get();
}

Router MakeRouter() {
  Router r;
  r.Add(bhttp::verb::get, "/api/users/{account}/photo", [](Context& ctx) -> awaitable<Response> {
    co_return MessageResponse(Status::ok, ctx.params[0] + "|" + std::string(ctx.query));
  });
  r.Add(
      bhttp::verb::post, "/api/users/{account}/photo",
      [](Context&) -> awaitable<Response> { co_return MessageResponse(Status::created, "posted"); },
      4096);
  r.Add(bhttp::verb::get, "/boom", [](Context&) -> awaitable<Response> {
    throw std::runtime_error("bug");
    co_return MessageResponse(Status::ok, "unreachable");
  });
  return r;
}

TEST(Router, MatchesCapturesAndQuery) {
  Router r = MakeRouter();
  Response res = Dispatch(r, bhttp::verb::get, "/api/users/al%40ice/photo?v=3");
  EXPECT_EQ(res.result(), Status::ok);
  EXPECT_EQ(res.body(), R"({"message":"al@ice|v=3"})");
  EXPECT_EQ(Dispatch(r, bhttp::verb::post, "/api/users/x/photo").result(), Status::created);
}

TEST(Router, UnknownPathIs404AndWrongMethodIs405WithAllow) {
  Router r = MakeRouter();
  Response missing = Dispatch(r, bhttp::verb::get, "/api/nothing");
  EXPECT_EQ(missing.result(), Status::not_found);
  EXPECT_EQ(missing.body(), R"({"message":"Not found"})");
  Response wrong = Dispatch(r, bhttp::verb::delete_, "/api/users/x/photo");
  EXPECT_EQ(wrong.result(), Status::method_not_allowed);
  EXPECT_EQ(wrong.body(), R"({"message":"Method not allowed"})");
  EXPECT_EQ(wrong[bhttp::field::allow], "GET, POST");
  EXPECT_EQ(Dispatch(r, bhttp::verb::get, "/api/users/%zz/photo").result(), Status::not_found);
}

TEST(Router, ThrowingHandlerBecomes500) {
  Router r = MakeRouter();
  EXPECT_EQ(Dispatch(r, bhttp::verb::get, "/boom").result(), Status::internal_server_error);
}

TEST(Router, BodyLimitPerRoute) {
  Router r = MakeRouter();
  EXPECT_EQ(r.BodyLimit("/api/users/x/photo?a=b", 100), 4096u);
  EXPECT_EQ(r.BodyLimit("/boom", 100), 100u);
  EXPECT_EQ(r.BodyLimit("/unknown", 100), 100u);
}

TEST(Router, FindOnceThenDispatchTheMatch) {
  Router r = MakeRouter();
  Router::Match m = r.Find("/api/users/b%2Fob/photo?v=1");
  EXPECT_EQ(m.BodyLimit(100), 4096u);
  boost::asio::io_context ioc;
  Request req{bhttp::verb::get, "/api/users/b%2Fob/photo?v=1", 11};
  auto f = boost::asio::co_spawn(ioc, r.Dispatch(req, std::move(m)), boost::asio::use_future);
  ioc.run();
  Response res = f.get();
  EXPECT_EQ(res.result(), Status::ok);
  EXPECT_EQ(res.body(), R"({"message":"b/ob|v=1"})");
  EXPECT_EQ(r.Find("/unknown").BodyLimit(7), 7u);
  EXPECT_EQ(r.Find("//api///users/x/photo/").BodyLimit(7), 4096u);  // empty segments ignored
  EXPECT_EQ(r.Find("/boom").BodyLimit(7), 7u);
}

TEST(Router, FirstRegisteredRouteWins) {
  Router r;
  r.Add(bhttp::verb::get, "/a/{x}", [](Context& ctx) -> awaitable<Response> {
    co_return MessageResponse(Status::ok, "capture " + ctx.params[0]);
  });
  r.Add(bhttp::verb::get, "/a/b",
        [](Context&) -> awaitable<Response> { co_return MessageResponse(Status::ok, "literal"); });
  r.Add(bhttp::verb::get, "/c/{x}/{y}", [](Context& ctx) -> awaitable<Response> {
    co_return MessageResponse(Status::ok, ctx.params[0] + "," + ctx.params[1]);
  });
  EXPECT_EQ(Dispatch(r, bhttp::verb::get, "/a/b").body(), R"({"message":"capture b"})");
  EXPECT_EQ(Dispatch(r, bhttp::verb::get, "/c/1/2").body(), R"({"message":"1,2"})");
  EXPECT_EQ(Dispatch(r, bhttp::verb::get, "/c/1").result(), Status::not_found);
  EXPECT_EQ(Dispatch(r, bhttp::verb::get, "/").result(), Status::not_found);
}

TEST(PercentDecode, RejectsBrokenEscapes) {
  EXPECT_EQ(PercentDecode("a%20b").value(), "a b");
  EXPECT_FALSE(PercentDecode("a%2").has_value());
  EXPECT_FALSE(PercentDecode("%").has_value());
  EXPECT_FALSE(PercentDecode("%g0").has_value());
}

TEST(Router, FallbackAnswersUnknownPathsOutsideApiAndWs) {
  Router r = MakeRouter();
  r.SetFallback([](Context& ctx) -> awaitable<Response> {
    co_return MessageResponse(Status::ok, "static " + std::string(Sv(ctx.request.target())));
  });
  Response page = Dispatch(r, bhttp::verb::get, "/app.js");
  EXPECT_EQ(page.result(), Status::ok);
  EXPECT_NE(page.body().find("static /app.js"), std::string::npos);
  EXPECT_EQ(Dispatch(r, bhttp::verb::head, "/").result(), Status::ok);
  EXPECT_EQ(Dispatch(r, bhttp::verb::get, "/api/nothing").result(), Status::not_found);
  EXPECT_EQ(Dispatch(r, bhttp::verb::get, "/ws").result(), Status::not_found);
  EXPECT_EQ(Dispatch(r, bhttp::verb::get, "/ws/agent").result(), Status::not_found);
  // Routes keep priority over the fallback.
  EXPECT_EQ(Dispatch(r, bhttp::verb::post, "/api/users/x/photo").result(), Status::created);
}

}  // namespace
}  // namespace gpuhub::http
