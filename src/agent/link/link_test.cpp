#include "agent/link/link.hpp"

#include <gtest/gtest.h>

namespace gpuhub::agent {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

TEST(ParseServerUrl, Forms) {
  auto a = ParseServerUrl("ws://127.0.0.1:8080");
  ASSERT_TRUE(a.ok());
  EXPECT_FALSE(a->tls);
  EXPECT_EQ(a->host, "127.0.0.1");
  EXPECT_EQ(a->port, "8080");
  EXPECT_EQ(a->path, "/ws/agent");
  auto b = ParseServerUrl("wss://hub.lab.example/custom/ws");
  ASSERT_TRUE(b.ok());
  EXPECT_TRUE(b->tls);
  EXPECT_EQ(b->port, "443");
  EXPECT_EQ(b->path, "/custom/ws");
  auto c = ParseServerUrl("ws://[::1]:9000/");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->host, "::1");
  EXPECT_EQ(c->port, "9000");
  EXPECT_EQ(c->path, "/ws/agent");
  for (const char* bad : {"http://x:1", "ws://", "ws://:80", "ws://h:", "ws://h:0", "ws://h:70000",
                          "ws://h:12ab", "ws://[::1", "x"}) {
    EXPECT_FALSE(ParseServerUrl(bad).ok()) << bad;
  }
}

TEST(Backoff, DoublesUpToTheCapWithJitter) {
  EXPECT_EQ(Backoff(0, milliseconds(500), seconds(30), 1.0), milliseconds(500));
  EXPECT_EQ(Backoff(0, milliseconds(500), seconds(30), 0.0), milliseconds(250));
  EXPECT_EQ(Backoff(3, milliseconds(500), seconds(30), 1.0), milliseconds(4000));
  EXPECT_EQ(Backoff(20, milliseconds(500), seconds(30), 1.0), seconds(30));
  EXPECT_EQ(Backoff(1000, milliseconds(500), seconds(30), 0.0), seconds(15));
}

}  // namespace
}  // namespace gpuhub::agent
