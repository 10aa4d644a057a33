#include "agent/runtime/container_manager.hpp"

#include <gtest/gtest.h>

namespace gpuhub::agent::runtime {
namespace {

using nlohmann::json;

proto::ContainerOp Op() {
  return {.request_id = "s-1",
          .op = proto::ContainerOp::Kind::kCreate,
          .id = 12,
          .account = "alice",
          .name = "dev",
          .image = "localhost/x:1",
          .ports = {22, 8888}};
}

TEST(CreateBody, PublishesPortsLabelsAndNoGpus) {
  json b = CreateBody(Op(), {40000, 40001}, RuntimeOptions{});
  EXPECT_EQ(b["Image"], "localhost/x:1");
  EXPECT_EQ(b["Hostname"], "dev");
  EXPECT_EQ(b["Labels"], json({{"gpuhub.owner", "alice"}, {"gpuhub.container", "12"}}));
  EXPECT_EQ(b["Env"], json::array({"CUDA_VISIBLE_DEVICES="}));
  EXPECT_EQ(b["ExposedPorts"], json({{"22/tcp", json::object()}, {"8888/tcp", json::object()}}));
  const json& host = b["HostConfig"];
  EXPECT_EQ(host["PortBindings"]["22/tcp"], json::array({{{"HostIp", ""}, {"HostPort", "40000"}}}));
  EXPECT_EQ(host["PortBindings"]["8888/tcp"][0]["HostPort"], "40001");
  EXPECT_EQ(host["Privileged"], false);
  EXPECT_EQ(host["Binds"], json::array());
  EXPECT_FALSE(host.contains("DeviceRequests"));
  EXPECT_FALSE(host.contains("Devices"));
}

TEST(CreateBody, MountsOnlyTheOwnersHome) {
  json b = CreateBody(Op(), {40000, 40001}, RuntimeOptions{.home_root = "/srv/homes"});
  EXPECT_EQ(b["HostConfig"]["Binds"], json::array({"/srv/homes/alice:/home/alice"}));
}

TEST(CreateBody, GpuRuntimes) {
  json nvidia = CreateBody(Op(), {1, 2}, RuntimeOptions{.gpu_runtime = "nvidia"});
  EXPECT_EQ(nvidia["HostConfig"]["DeviceRequests"][0]["Driver"], "nvidia");
  EXPECT_EQ(nvidia["HostConfig"]["DeviceRequests"][0]["Count"], -1);
  EXPECT_EQ(nvidia["Env"], json::array({"CUDA_VISIBLE_DEVICES=", "NVIDIA_VISIBLE_DEVICES=all"}));
  json cdi = CreateBody(Op(), {1, 2}, RuntimeOptions{.gpu_runtime = "cdi"});
  EXPECT_EQ(cdi["HostConfig"]["Devices"][0]["PathOnHost"], "nvidia.com/gpu=all");
  EXPECT_EQ(cdi["HostConfig"]["Privileged"], false);
}

TEST(StateOf, ReadsTheServerIdFromTheLabel) {
  ContainerSummary c{.id = "abc",
                     .name = "gpuhub-alice-dev",
                     .image = "x",
                     .state = "running",
                     .labels = {{"gpuhub.container", "12"}, {"gpuhub.owner", "alice"}},
                     .ports = {{22, 40000}}};
  auto s = StateOf(c);
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(*s, (proto::ContainerState{12, "abc", "running", {{22, 40000}}}));
  for (const char* bad : {"", "x", "0", "-3", "12x"}) {
    c.labels["gpuhub.container"] = bad;
    EXPECT_FALSE(StateOf(c).has_value()) << bad;
  }
  c.labels.erase("gpuhub.container");
  EXPECT_FALSE(StateOf(c).has_value());
}

}  // namespace
}  // namespace gpuhub::agent::runtime
