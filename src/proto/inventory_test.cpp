#include "proto/inventory.hpp"

#include <gtest/gtest.h>

#include <limits>
#include <string>

namespace gpuhub::proto {
namespace {

using nlohmann::json;

Inventory Sample() {
  Inventory inv;
  inv.hostname = "node-01";
  inv.ip = "10.0.0.5";
  inv.gpus.push_back({0, "GPU-aaaa", "NVIDIA A100-SXM4-40GB", 40960, 1024, 37, 45, {1234, 5678}});
  inv.gpus.push_back({1, "GPU-bbbb", "NVIDIA A100-SXM4-40GB", 40960, 0, 0, 30, {}});
  inv.cpu = {"AMD EPYC 7742", 128, 12.5};
  inv.memory = {515396, 12345};
  inv.disk = {3724, 1200};
  return inv;
}

TEST(InventoryJsonTest, ShapeFollowsTheContract) {
  json j = ToJson(Sample());
  EXPECT_EQ(j["hostname"], "node-01");
  EXPECT_EQ(j["ip"], "10.0.0.5");
  ASSERT_TRUE(j["gpu"].is_array());
  ASSERT_EQ(j["gpu"].size(), 2u);
  EXPECT_EQ(j["gpu"][0], json::parse(R"({"index":0,"uuid":"GPU-aaaa","name":"NVIDIA A100-SXM4-40GB",
                "memory_total":40960,"memory_used":1024,"utilization":37,"temperature":45,
                "processes":[1234,5678]})"));
  EXPECT_EQ(j["cpu"], json::parse(R"({"name":"AMD EPYC 7742","cores":128,"usage":12.5})"));
  EXPECT_EQ(j["memory"], json::parse(R"({"total":515396,"used":12345})"));
  EXPECT_EQ(j["disk"], json::parse(R"({"total":3724,"used":1200})"));
}

TEST(InventoryJsonTest, RoundTrip) {
  for (const Inventory& inv : {Sample(), Inventory{}}) {
    auto back = InventoryFromJson(ToJson(inv));
    ASSERT_TRUE(back.ok()) << back.error().message;
    EXPECT_EQ(*back, inv);
    // Through text too, as it travels.
    auto parsed = InventoryFromJson(json::parse(ToJson(inv).dump()));
    ASSERT_TRUE(parsed.ok()) << parsed.error().message;
    EXPECT_EQ(*parsed, inv);
  }
}

TEST(InventoryJsonTest, LargeValuesRoundTrip) {
  Inventory inv = Sample();
  inv.gpus[0].memory_total = std::numeric_limits<int64_t>::max();
  inv.gpus[0].processes = {std::numeric_limits<int64_t>::max()};
  inv.cpu.usage = 100;
  auto back = InventoryFromJson(json::parse(ToJson(inv).dump()));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, inv);
}

TEST(InventoryJsonTest, IntegerUsageAccepted) {
  json j = ToJson(Sample());
  j["cpu"]["usage"] = 7;
  auto inv = InventoryFromJson(j);
  ASSERT_TRUE(inv.ok()) << inv.error().message;
  EXPECT_EQ(inv->cpu.usage, 7.0);
}

TEST(InventoryJsonTest, UnknownKeysIgnored) {
  json j = ToJson(Sample());
  j["future"] = {1, 2};
  j["gpu"][0]["power"] = 250;
  auto inv = InventoryFromJson(j);
  ASSERT_TRUE(inv.ok()) << inv.error().message;
  EXPECT_EQ(*inv, Sample());
}

// Each mutation of a valid inventory must be rejected with a message that
// names `field`.
struct BadCase {
  std::string pointer;  // JSON pointer to change; the value is removed when `value` is discarded
  json value;
  std::string field;
};

TEST(InventoryJsonTest, RejectsBadFieldsNamingThem) {
  const json kRemove = json(json::value_t::discarded);
  std::vector<BadCase> cases = {
      {"/hostname", 5, "hostname"},
      {"/hostname", kRemove, "hostname"},
      {"/ip", nullptr, "ip"},
      {"/gpu", json::object(), "gpu"},
      {"/gpu", kRemove, "gpu"},
      {"/gpu/0", "x", "gpu[0]"},
      {"/gpu/1/index", -1, "gpu[1].index"},
      {"/gpu/1/index", 1.5, "gpu[1].index"},
      {"/gpu/1/index", 3000000000u, "gpu[1].index"},
      {"/gpu/1/index", 0, "gpu[1].index"},  // indices are 0..n-1 in order
      {"/gpu/0/uuid", json::array(), "gpu[0].uuid"},
      {"/gpu/0/name", kRemove, "gpu[0].name"},
      {"/gpu/0/memory_total", "40960", "gpu[0].memory_total"},
      {"/gpu/0/memory_total", -5, "gpu[0].memory_total"},
      {"/gpu/0/memory_total", 18446744073709551615u, "gpu[0].memory_total"},
      {"/gpu/0/memory_used", true, "gpu[0].memory_used"},
      {"/gpu/0/utilization", 101, "gpu[0].utilization"},
      {"/gpu/0/utilization", -1, "gpu[0].utilization"},
      {"/gpu/0/temperature", nullptr, "gpu[0].temperature"},
      {"/gpu/0/processes", 5, "gpu[0].processes"},
      {"/gpu/0/processes", kRemove, "gpu[0].processes"},
      {"/gpu/0/processes/1", -7, "gpu[0].processes[1]"},
      {"/gpu/0/processes/1", "7", "gpu[0].processes[1]"},
      {"/cpu", json::array(), "cpu"},
      {"/cpu", kRemove, "cpu"},
      {"/cpu/name", 1, "cpu.name"},
      {"/cpu/cores", -2, "cpu.cores"},
      {"/cpu/usage", "12", "cpu.usage"},
      {"/cpu/usage", -0.5, "cpu.usage"},
      {"/cpu/usage", 100.5, "cpu.usage"},
      {"/cpu/usage", kRemove, "cpu.usage"},
      {"/memory", 5, "memory"},
      {"/memory/total", -1, "memory.total"},
      {"/memory/used", kRemove, "memory.used"},
      {"/disk", nullptr, "disk"},
      {"/disk/total", 1.25, "disk.total"},
      {"/disk/used", -3, "disk.used"},
  };
  for (const BadCase& c : cases) {
    json j = ToJson(Sample());
    json::json_pointer ptr(c.pointer);
    if (c.value.is_discarded()) {
      j[ptr.parent_pointer()].erase(ptr.back());
    } else {
      j[ptr] = c.value;
    }
    auto inv = InventoryFromJson(j);
    ASSERT_FALSE(inv.ok()) << c.pointer << " = " << c.value.dump();
    EXPECT_EQ(inv.error().code, ErrorCode::kInvalidArgument);
    EXPECT_EQ(inv.error().message.rfind(c.field + " ", 0), 0u)
        << c.pointer << ": " << inv.error().message;
  }
}

TEST(InventoryJsonTest, RejectsNonObjects) {
  for (const json& j : {json(nullptr), json(1), json("x"), json::array(), json(true)}) {
    auto inv = InventoryFromJson(j);
    ASSERT_FALSE(inv.ok()) << j.dump();
    EXPECT_EQ(inv.error().code, ErrorCode::kInvalidArgument);
  }
}

TEST(InventoryDiffTest, EqualGivesEmptyObject) {
  json d = Diff(Sample(), Sample());
  EXPECT_TRUE(d.is_object());
  EXPECT_TRUE(d.empty());
  Inventory inv = Sample();
  ASSERT_TRUE(ApplyDiff(inv, d).ok());
  EXPECT_EQ(inv, Sample());
}

TEST(InventoryDiffTest, OnlyChangedParts) {
  Inventory before = Sample();
  Inventory now = before;
  now.cpu.usage = 50;
  now.memory.used = 2;
  json d = Diff(before, now);
  EXPECT_EQ(d, json::parse(R"({"cpu":{"name":"AMD EPYC 7742","cores":128,"usage":50.0},
                              "memory":{"total":515396,"used":2}})"));
}

TEST(InventoryDiffTest, AnyGpuChangeSendsAllGpus) {
  Inventory before = Sample();
  Inventory now = before;
  now.gpus[1].processes.push_back(42);
  json d = Diff(before, now);
  ASSERT_EQ(d.size(), 1u);
  ASSERT_TRUE(d.contains("gpu"));
  EXPECT_EQ(d["gpu"].size(), 2u);
  EXPECT_EQ(d["gpu"][1]["processes"], json::array({42}));
}

TEST(InventoryDiffTest, ApplyReproducesNow) {
  Inventory before = Sample();
  std::vector<Inventory> nows;
  Inventory n = before;
  n.hostname = "node-02";
  nows.push_back(n);
  n.ip = "";
  nows.push_back(n);
  n.gpus.pop_back();
  nows.push_back(n);
  n.gpus.clear();
  nows.push_back(n);
  n.disk.used = 0;
  n.cpu = {"other", 4, 0.25};
  nows.push_back(n);
  nows.push_back(Inventory{});
  for (const Inventory& now : nows) {
    Inventory inv = before;
    ASSERT_TRUE(ApplyDiff(inv, Diff(before, now)).ok());
    EXPECT_EQ(inv, now);
    // And back again.
    ASSERT_TRUE(ApplyDiff(inv, Diff(now, before)).ok());
    EXPECT_EQ(inv, before);
  }
}

TEST(InventoryDiffTest, MalformedDiffLeavesInventoryUnchanged) {
  for (const char* text : {
           R"([])",
           R"(null)",
           R"("cpu")",
           R"({"hostname": 1})",
           R"({"hostname": "new", "gpu": 5})",        // valid part first, then bad
           R"({"gpu": [], "memory": {"total": 1}})",  // partial sub-object
           R"({"gpu": [{"index": 0}]})",
           R"({"cpu": {"name": "x", "cores": 1, "usage": "high"}})",
           R"({"cpu": null})",
           R"({"disk": {"total": -1, "used": 0}})",
           R"({"memory": {"total": 1.5, "used": 0}})",
       }) {
    Inventory inv = Sample();
    Status s = ApplyDiff(inv, json::parse(text));
    ASSERT_FALSE(s.ok()) << text;
    EXPECT_EQ(s.error().code, ErrorCode::kInvalidArgument);
    EXPECT_EQ(inv, Sample()) << text;
  }
}

TEST(InventoryDiffTest, UnknownKeysIgnored) {
  Inventory inv = Sample();
  ASSERT_TRUE(ApplyDiff(inv, json::parse(R"({"hostname": "x", "later": {}})")).ok());
  EXPECT_EQ(inv.hostname, "x");
}

}  // namespace
}  // namespace gpuhub::proto
