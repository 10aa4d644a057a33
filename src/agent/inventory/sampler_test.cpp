#include "agent/inventory/sampler.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "common/file_util.hpp"

namespace gpuhub::agent {
namespace {

// Returns what the test put in `next`.
class ScriptedGpus final : public GpuSource {
 public:
  explicit ScriptedGpus(Result<std::vector<proto::Gpu>>* next) : next_(next) {}
  Result<std::vector<proto::Gpu>> Read() override { return *next_; }
  std::string Describe() const override { return "scripted"; }

 private:
  Result<std::vector<proto::Gpu>>* next_;
};

class InventorySamplerTest : public testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = testing::TempDir() + "/sampler_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    root_ = tmpl;
    Put("cpuinfo", "processor : 0\nmodel name : Test CPU 9000\n\nprocessor : 1\n\nprocessor : 2\n");
    Put("stat", "cpu  100 0 100 800 0 0 0 0 0 0\ncpu0 1 1 1 1\nintr 5\n");
    Put("meminfo", "MemTotal: 4194304 kB\nMemFree: 1 kB\nMemAvailable: 1048576 kB\n");
  }
  void TearDown() override { std::filesystem::remove_all(root_); }

  void Put(const std::string& name, const std::string& text) {
    ASSERT_TRUE(WriteFileAtomic(root_ + "/" + name, text, 0600).ok());
  }

  std::string root_;
};

TEST_F(InventorySamplerTest, SamplesFakeProcfs) {
  InventorySampler sampler(nullptr, root_, root_);
  std::vector<std::string> problems;
  proto::Inventory inv = sampler.Sample(&problems);
  EXPECT_TRUE(problems.empty()) << problems[0];

  char host[HOST_NAME_MAX + 1] = {};
  ASSERT_EQ(::gethostname(host, sizeof host - 1), 0);
  EXPECT_EQ(inv.hostname, host);
  EXPECT_EQ(inv.ip, "");
  EXPECT_TRUE(inv.gpus.empty());
  EXPECT_EQ(inv.cpu.name, "Test CPU 9000");
  EXPECT_EQ(inv.cpu.cores, 3);
  EXPECT_EQ(inv.cpu.usage, 0);  // no tick since construction
  EXPECT_EQ(inv.memory, (proto::Memory{4096, 3072}));
  auto disk = DiskUsage(root_);
  ASSERT_TRUE(disk.ok());
  EXPECT_EQ(inv.disk.total, disk->total);
  EXPECT_EQ(sampler.DescribeGpus(), "no GPU source");

  // 300 busy ticks of 400 since the previous sample.
  Put("stat", "cpu  300 0 200 900 0 0 0 0 0 0\n");
  inv = sampler.Sample(&problems);
  EXPECT_TRUE(problems.empty());
  EXPECT_DOUBLE_EQ(inv.cpu.usage, 75.0);
  // No ticks since: 0.
  inv = sampler.Sample(&problems);
  EXPECT_DOUBLE_EQ(inv.cpu.usage, 0.0);
  Put("stat", "cpu  300 0 200 1000 0 0 0 0 0 0\n");
  EXPECT_DOUBLE_EQ(sampler.Sample().cpu.usage, 0.0);
}

TEST_F(InventorySamplerTest, FirstSampleUsesTheConstructionBaseline) {
  InventorySampler sampler(nullptr, root_, root_);
  Put("stat", "cpu  150 0 150 900 0 0 0 0\n");  // 100 busy of 200
  EXPECT_DOUBLE_EQ(sampler.Sample().cpu.usage, 50.0);
}

TEST_F(InventorySamplerTest, BrokenPartsKeepTheirLastValues) {
  InventorySampler sampler(nullptr, root_, root_);
  proto::Inventory first = sampler.Sample();

  Put("meminfo", "garbage");
  Put("stat", "nothing here\n");
  std::vector<std::string> problems;
  proto::Inventory inv = sampler.Sample(&problems);
  ASSERT_EQ(problems.size(), 2u);
  EXPECT_NE(problems[0].find("/stat"), std::string::npos) << problems[0];
  EXPECT_NE(problems[1].find("MemTotal"), std::string::npos) << problems[1];
  EXPECT_EQ(inv.memory, first.memory);
  EXPECT_EQ(inv.cpu, first.cpu);

  std::filesystem::remove(root_ + "/meminfo");
  problems.clear();
  inv = sampler.Sample(&problems);
  EXPECT_EQ(inv.memory, first.memory);
  ASSERT_EQ(problems.size(), 2u);
  EXPECT_NE(problems[1].find("no such file"), std::string::npos) << problems[1];
}

TEST_F(InventorySamplerTest, EmptyProcfsGivesZerosAndProblems) {
  std::string empty = root_ + "/empty";
  ASSERT_TRUE(MakeDirs(empty).ok());
  InventorySampler sampler(nullptr, "/no/such/disk", empty);
  std::vector<std::string> problems;
  proto::Inventory inv = sampler.Sample(&problems);
  EXPECT_EQ(problems.size(), 4u);  // cpuinfo, stat, meminfo, disk
  EXPECT_EQ(inv.cpu.name, "");
  EXPECT_EQ(inv.memory, proto::Memory{});
  EXPECT_EQ(inv.disk, proto::Disk{});
  // cpuinfo is retried until it can be read.
  problems.clear();
  (void)sampler.Sample(&problems);
  EXPECT_EQ(problems.size(), 4u);
}

TEST_F(InventorySamplerTest, GpusKeepTheLastGoodListWhileTheSourceFails) {
  std::vector<proto::Gpu> two = {{0, "GPU-a", "A", 100, 1, 2, 3, {}},
                                 {1, "GPU-b", "B", 100, 1, 2, 3, {42}}};
  Result<std::vector<proto::Gpu>> next = two;
  InventorySampler sampler(std::make_unique<ScriptedGpus>(&next), root_, root_);
  EXPECT_EQ(sampler.DescribeGpus(), "scripted");
  EXPECT_EQ(sampler.Sample().gpus, two);

  next = Internal("NVML went away");
  std::vector<std::string> problems;
  EXPECT_EQ(sampler.Sample(&problems).gpus, two);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_EQ(problems[0], "NVML went away");

  next = std::vector<proto::Gpu>{};
  EXPECT_TRUE(sampler.Sample().gpus.empty());
}

TEST_F(InventorySamplerTest, RealProc) {
  InventorySampler sampler(nullptr);
  std::vector<std::string> problems;
  proto::Inventory inv = sampler.Sample(&problems);
  EXPECT_TRUE(problems.empty()) << problems[0];
  EXPECT_GT(inv.cpu.cores, 0);
  EXPECT_FALSE(inv.cpu.name.empty());
  EXPECT_GT(inv.memory.total, 0);
  EXPECT_GE(inv.cpu.usage, 0);
  EXPECT_LE(inv.cpu.usage, 100);
  // What it produces is what the server accepts.
  auto back = proto::InventoryFromJson(proto::ToJson(inv));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, inv);
}

}  // namespace
}  // namespace gpuhub::agent
