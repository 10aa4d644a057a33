#include "proto/containers.hpp"

#include <gtest/gtest.h>

namespace gpuhub::proto {
namespace {

using nlohmann::json;

TEST(ContainerOp, CreateRoundTrips) {
  ContainerOp op{.request_id = "s-1",
                 .op = ContainerOp::Kind::kCreate,
                 .id = 12,
                 .account = "alice",
                 .name = "dev",
                 .image = "localhost/x:1",
                 .ports = {22, 8888}};
  auto back = ContainerOpFromJson(ToJson(op));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, op);
}

TEST(ContainerOp, OtherOpsCarryNoImage) {
  for (auto kind : {ContainerOp::Kind::kStart, ContainerOp::Kind::kStop,
                    ContainerOp::Kind::kRestart, ContainerOp::Kind::kDelete}) {
    ContainerOp op{.request_id = "r", .op = kind, .id = 1, .account = "a", .name = "n"};
    json j = ToJson(op);
    EXPECT_FALSE(j.contains("image"));
    auto back = ContainerOpFromJson(j);
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(*back, op);
  }
}

TEST(ContainerOp, RejectsBadFieldsNamingThem) {
  json good = ToJson(ContainerOp{
      .request_id = "r", .id = 1, .account = "a", .name = "n", .image = "i", .ports = {22}});
  struct Case {
    const char* key;
    json value;
    const char* message;
  };
  for (const auto& c : std::vector<Case>{
           {"op", "explode", "op must be one of create, start, stop, restart, delete"},
           {"id", -1, "id must not be negative"},
           {"id", "1", "id must be a non-negative integer"},
           {"ports", 22, "ports must be an array"},
           {"ports", json::array({0}), "ports[0] must be between 1 and 65535"},
           {"ports", json::array({70000}), "ports[0] must be at most 65535"},
           {"image", nullptr, "image must be a string"},
       }) {
    json j = good;
    j[c.key] = c.value;
    auto r = ContainerOpFromJson(j);
    ASSERT_FALSE(r.ok()) << c.key;
    EXPECT_EQ(r.error().message, c.message);
  }
  json j = good;
  j.erase("request_id");
  EXPECT_EQ(ContainerOpFromJson(j).error().message, "request_id is missing");
  EXPECT_FALSE(ContainerOpFromJson(json::array()).ok());
}

TEST(ContainerResult, RoundTripsSuccessAndFailure) {
  ContainerResult ok{
      .request_id = "s-2",
      .ok = true,
      .container = ContainerState{
          .id = 3, .runtime_id = "abc", .status = "running", .ports = {{22, 40022}}}};
  auto back = ContainerResultFromJson(ToJson(ok));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, ok);

  ContainerResult failed{
      .request_id = "s-3", .ok = false, .code = "conflict", .message = "name in use"};
  back = ContainerResultFromJson(ToJson(failed));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, failed);
}

TEST(ContainerResult, RejectsBadContainer) {
  json j = {{"request_id", "r"}, {"ok", true}, {"container", {{"id", 1}}}};
  auto r = ContainerResultFromJson(j);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "container.runtime_id is missing");
  EXPECT_EQ(ContainerResultFromJson({{"request_id", "r"}, {"ok", "yes"}}).error().message,
            "ok must be true or false");
}

TEST(ContainersReport, RoundTripsAndNamesTheBadEntry) {
  std::vector<ContainerState> list = {{1, "a", "running", {{8080, 40001}}}, {2, "b", "exited", {}}};
  auto back = ContainersReportFromJson(ContainersReportJson(list));
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, list);

  json bad = ContainersReportJson(list);
  bad["containers"][1]["ports"] = json::array({{{"container", 1}}});
  EXPECT_EQ(ContainersReportFromJson(bad).error().message,
            "containers[1].ports[0].host is missing");
}

TEST(RuntimeName, JoinsAccountAndName) {
  EXPECT_EQ(RuntimeName("alice", "dev"), "gpuhub-alice-dev");
}

}  // namespace
}  // namespace gpuhub::proto
