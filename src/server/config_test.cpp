#include "server/config.hpp"

#include <gtest/gtest.h>

namespace gpuhub::server {
namespace {

TEST(ApplyToml, ReadsEverySection) {
  ServerConfig c;
  auto s = ApplyToml(R"(
listen = "0.0.0.0:9000"
data = "/srv/gpuhub"
io_threads = 4
[limits]
body_bytes = 2048
idle_timeout = "2m"
read_timeout = 5
[auth]
token_lifetime = "1h30m"
login_max_failures = 3
login_window = 1.5
)",
                     "test.toml", c);
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(c.listen, "0.0.0.0:9000");
  EXPECT_EQ(c.data_dir, "/srv/gpuhub");
  EXPECT_EQ(c.io_threads, 4);
  EXPECT_EQ(c.body_bytes, 2048u);
  EXPECT_EQ(c.idle_timeout, std::chrono::minutes(2));
  EXPECT_EQ(c.read_timeout, std::chrono::seconds(5));
  EXPECT_EQ(c.token_lifetime, std::chrono::minutes(90));
  EXPECT_EQ(c.login_max_failures, 3);
  EXPECT_EQ(c.login_window, std::chrono::milliseconds(1500));
}

TEST(ApplyToml, ErrorsNameTheSetting) {
  ServerConfig c;
  EXPECT_NE(ApplyToml("listen = 5", "f", c).error().message.find("listen"), std::string::npos);
  EXPECT_NE(ApplyToml("bogus = 1", "f", c).error().message.find("bogus"), std::string::npos);
  EXPECT_NE(ApplyToml("[auth]\ntoken_lifetime = \"soon\"", "f", c)
                .error()
                .message.find("auth.token_lifetime"),
            std::string::npos);
  EXPECT_NE(ApplyToml("[limits]\nbody_bytes = -1", "f", c).error().message.find("body_bytes"),
            std::string::npos);
  EXPECT_FALSE(ApplyToml("listen = ", "f", c).ok());
}

TEST(ParseCommandLine, FlagsOverrideDefaults) {
  const char* argv[] = {"gpuhubd",      "--listen", "127.0.0.1:0", "--data", "/tmp/x",
                        "--io-threads", "3"};
  auto inv = ParseCommandLine(7, argv, "/web");
  ASSERT_TRUE(inv.ok()) << inv.error().message;
  EXPECT_EQ(inv->config.listen, "127.0.0.1:0");
  EXPECT_EQ(inv->config.data_dir, "/tmp/x");
  EXPECT_EQ(inv->config.io_threads, 3);
  EXPECT_EQ(inv->config.web_root, "/web");
  const char* bad[] = {"gpuhubd", "--listen", "nohostport"};
  EXPECT_FALSE(ParseCommandLine(3, bad, "/web").ok());
}

TEST(SplitHostPort, Forms) {
  EXPECT_EQ(SplitHostPort("127.0.0.1:8080").value(),
            std::make_pair(std::string("127.0.0.1"), static_cast<unsigned short>(8080)));
  EXPECT_EQ(SplitHostPort("[::1]:0").value().first, "::1");
  EXPECT_FALSE(SplitHostPort(":80").ok());
  EXPECT_FALSE(SplitHostPort("h:99999").ok());
  EXPECT_FALSE(SplitHostPort("h:").ok());
}

}  // namespace
}  // namespace gpuhub::server
