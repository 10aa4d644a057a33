#include "server/web/static_files.hpp"

#include <gtest/gtest.h>

#include <fstream>

namespace gpuhub::web {
namespace {

namespace fs = std::filesystem;
using http::bhttp::field;
using http::bhttp::verb;

class StaticFilesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ =
        fs::temp_directory_path() /
        ("gpuhub-web-test-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
         "-" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(base_);
    root_ = base_ / "web";
    fs::create_directories(root_ / "js");
    fs::create_directories(root_ / "avatars");
    Write(root_ / "index.html", "<!doctype html><title>gpuhub</title>");
    Write(root_ / "js" / "app.js", "export {};");
    Write(root_ / "style.CSS", "body{}");
    Write(root_ / ".secret", "hidden");
    Write(base_ / "outside.txt", "outside");
    fs::create_symlink(base_ / "outside.txt", root_ / "escape.txt");
  }
  void TearDown() override { fs::remove_all(base_); }

  static void Write(const fs::path& p, const std::string& text) { std::ofstream(p) << text; }

  http::Response Get(std::string target, verb method = verb::get) {
    http::Request req{method, target, 11};
    return StaticFiles(root_).Serve(req);
  }

  fs::path base_, root_;
};

TEST(ContentTypeFor, KnownAndUnknownExtensions) {
  EXPECT_EQ(ContentTypeFor("index.html"), "text/html; charset=utf-8");
  EXPECT_EQ(ContentTypeFor("a/b/app.js"), "text/javascript; charset=utf-8");
  EXPECT_EQ(ContentTypeFor("STYLE.CSS"), "text/css; charset=utf-8");
  EXPECT_EQ(ContentTypeFor("logo.svg"), "image/svg+xml");
  EXPECT_EQ(ContentTypeFor("x.png"), "image/png");
  EXPECT_EQ(ContentTypeFor("m.json"), "application/json");
  EXPECT_EQ(ContentTypeFor("favicon.ico"), "image/x-icon");
  EXPECT_EQ(ContentTypeFor("f.woff2"), "font/woff2");
  EXPECT_EQ(ContentTypeFor("README"), "application/octet-stream");
  EXPECT_EQ(ContentTypeFor("dir.v2/README"), "application/octet-stream");
}

TEST(ResolvePath, StaysUnderTheRoot) {
  fs::path root = "/srv/web";
  EXPECT_EQ(ResolvePath(root, "/"), root / "index.html");
  EXPECT_EQ(ResolvePath(root, "/js/app.js"), root / "js" / "app.js");
  EXPECT_EQ(ResolvePath(root, "//js//app.js"), root / "js" / "app.js");
  EXPECT_EQ(ResolvePath(root, "/a%20b.js"), root / "a b.js");
  EXPECT_EQ(ResolvePath(root, "/avatars/"), root / "avatars" / "index.html");
  EXPECT_FALSE(ResolvePath(root, "/../etc/passwd"));
  EXPECT_FALSE(ResolvePath(root, "/js/../../etc/passwd"));
  EXPECT_FALSE(ResolvePath(root, "/%2e%2e/etc/passwd"));
  EXPECT_FALSE(ResolvePath(root, "/js/%2E%2E%2F%2E%2E%2Fetc"));
  EXPECT_FALSE(ResolvePath(root, "/..%5c..%5cetc"));
  EXPECT_FALSE(ResolvePath(root, "/a%00.js"));
  EXPECT_FALSE(ResolvePath(root, "/.git/config"));
  EXPECT_FALSE(ResolvePath(root, "/./index.html"));
  EXPECT_FALSE(ResolvePath(root, "/%zz"));
  EXPECT_FALSE(ResolvePath(root, "relative"));
}

TEST_F(StaticFilesTest, ServesFilesWithTypeAndCacheHeaders) {
  http::Response index = Get("/");
  ASSERT_EQ(index.result(), http::Status::ok);
  EXPECT_EQ(index.body(), "<!doctype html><title>gpuhub</title>");
  EXPECT_EQ(index[field::content_type], "text/html; charset=utf-8");
  EXPECT_EQ(index[field::cache_control], "no-cache");
  EXPECT_FALSE(index[field::etag].empty());
  EXPECT_TRUE(index[field::last_modified].ends_with(" GMT"));

  http::Response js = Get("/js/app.js?v=1");
  ASSERT_EQ(js.result(), http::Status::ok);
  EXPECT_EQ(js[field::content_type], "text/javascript; charset=utf-8");
  EXPECT_EQ(Get("/style.CSS")[field::content_type], "text/css; charset=utf-8");
}

TEST_F(StaticFilesTest, RevalidatesWithETag) {
  http::Response first = Get("/js/app.js");
  std::string etag(first[field::etag]);
  http::Request req{verb::get, "/js/app.js", 11};
  req.set(field::if_none_match, "\"other\", " + etag);
  http::Response again = StaticFiles(root_).Serve(req);
  EXPECT_EQ(again.result(), http::Status::not_modified);
  EXPECT_TRUE(again.body().empty());
  EXPECT_EQ(again[field::etag], etag);

  req.set(field::if_none_match, "\"stale\"");
  EXPECT_EQ(StaticFiles(root_).Serve(req).result(), http::Status::ok);
}

TEST_F(StaticFilesTest, RefusesEscapesHiddenFilesAndDirectories) {
  for (const char* target : {"/../outside.txt", "/%2e%2e/outside.txt", "/escape.txt", "/.secret",
                             "/js", "/js/", "/missing.js", "/avatars/"}) {
    http::Response res = Get(target);
    EXPECT_EQ(res.result(), http::Status::not_found) << target;
    EXPECT_EQ(res.body(), R"({"message":"Not found"})") << target;
  }
}

TEST_F(StaticFilesTest, HeadAndOtherMethods) {
  EXPECT_EQ(Get("/", verb::head).result(), http::Status::ok);
  http::Response post = Get("/", verb::post);
  EXPECT_EQ(post.result(), http::Status::method_not_allowed);
  EXPECT_EQ(post[field::allow], "GET, HEAD");
}

}  // namespace
}  // namespace gpuhub::web
