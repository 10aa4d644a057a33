#include "client/url.hpp"

#include <gtest/gtest.h>

#include "client/http.hpp"

namespace gpuhub::client {
namespace {

const std::vector<std::string_view> kHttp = {"http", "https"};

TEST(ParseUrl, Forms) {
  auto a = ParseUrl("http://127.0.0.1:8080", kHttp, "/");
  ASSERT_TRUE(a.ok());
  EXPECT_FALSE(a->tls);
  EXPECT_EQ(a->scheme, "http");
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, "8080");
  EXPECT_EQ(a->path, "/");
  auto b = ParseUrl("https://hub.lab.example/gpuhub/", kHttp, "/");
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE(b->tls);
  EXPECT_EQ(b->port, "443");
  EXPECT_EQ(b->path, "/gpuhub/");
  EXPECT_EQ(JoinPath(*b, "/api/images"), "/gpuhub/api/images");
  EXPECT_EQ(JoinPath(*a, "/api/images"), "/api/images");
  auto c = ParseUrl("wss://[::1]:9000", {"ws", "wss"}, "/ws/agent");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->host, "::1");
  EXPECT_EQ(c->path, "/ws/agent");
  EXPECT_EQ(HostPort(*c), "[::1]:9000");
}

TEST(ParseUrl, Rejects) {
  for (auto bad : {"", "ftp://x", "http://", "http://:80", "http://h:", "http://h:0",
                   "http://h:70000", "http://h:8a", "http://[::1", "ws://h:80"}) {
    auto r = ParseUrl(bad, kHttp, "/");
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
    }
  }
}

TEST(Fetch, UnreachableIsUnavailable) {
  auto url = ParseUrl("http://127.0.0.1:1", kHttp, "/");
  ASSERT_TRUE(url.ok());
  auto r = Fetch(*url, {}, std::chrono::seconds(2));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kUnavailable);
}

}  // namespace
}  // namespace gpuhub::client
