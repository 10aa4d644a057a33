#include "agent/inventory/nvml.hpp"

#include <dlfcn.h>
#include <gtest/gtest.h>

#include <string>

namespace gpuhub::agent {
namespace {

TEST(NvmlGpuSourceTest, OpenOnThisMachine) {
  std::string why;
  auto source = NvmlGpuSource::Open(&why);
  if (source != nullptr) {
    // A machine with an NVIDIA driver: reading must work.
    auto gpus = source->Read();
    EXPECT_TRUE(gpus.ok()) << gpus.error().message;
    GTEST_SKIP() << "NVIDIA driver present: " << source->Describe();
  }
  EXPECT_NE(why.find("libnvidia-ml.so.1"), std::string::npos) << why;
  EXPECT_EQ(NvmlGpuSource::Open(nullptr), nullptr);  // no reason wanted: still fine
}

TEST(NvmlGpuSourceTest, MissingLibrary) {
  std::string why;
  EXPECT_EQ(NvmlGpuSource::Open("/nonexistent/libnvidia-ml.so.1", &why), nullptr);
  EXPECT_NE(why.find("cannot load /nonexistent/libnvidia-ml.so.1"), std::string::npos) << why;
}

TEST(NvmlGpuSourceTest, LibraryWithoutNvml) {
  std::string why;
  EXPECT_EQ(NvmlGpuSource::Open("libm.so.6", &why), nullptr);
  EXPECT_EQ(why, "libm.so.6 lacks nvmlInit_v2");
}

// Drives one of the fake NVML libraries through its control functions.
class FakeNvml {
 public:
  explicit FakeNvml(const char* path) : path_(path), lib_(::dlopen(path, RTLD_NOW | RTLD_LOCAL)) {
    EXPECT_NE(lib_, nullptr) << ::dlerror();
    Call<void>("FakeNvmlReset");
  }
  ~FakeNvml() {
    if (lib_ != nullptr) ::dlclose(lib_);
  }
  FakeNvml(const FakeNvml&) = delete;
  FakeNvml& operator=(const FakeNvml&) = delete;

  template <typename R, typename... Args>
  R Call(const char* name, Args... args) {
    void* sym = lib_ != nullptr ? ::dlsym(lib_, name) : nullptr;
    if (sym == nullptr) {
      ADD_FAILURE() << "no " << name << " in " << path_;
      return R();
    }
    return reinterpret_cast<R (*)(Args...)>(sym)(args...);
  }

  const std::string path_;

 private:
  void* lib_;
};

constexpr int kFailUuid = 1, kFailName = 2, kFailMemory = 4, kFailUtilization = 8,
              kFailTemperature = 16, kFailProcesses = 32, kFailHandle = 64;

class NvmlFakeTest : public testing::TestWithParam<const char*> {};

TEST_P(NvmlFakeTest, ReadsAllFields) {
  FakeNvml fake(GetParam());
  fake.Call<void>("FakeNvmlSetDeviceCount", 2u);
  fake.Call<void>("FakeNvmlSetProcesses", 1u, 3u, 0u);
  std::string why;
  auto source = NvmlGpuSource::Open(fake.path_, &why);
  ASSERT_NE(source, nullptr) << why;
  EXPECT_EQ(fake.Call<int>("FakeNvmlInitialized"), 1);
  EXPECT_EQ(source->Describe(), "NVML (" + fake.path_ + ", driver 999.99)");

  auto gpus = source->Read();
  ASSERT_TRUE(gpus.ok()) << gpus.error().message;
  ASSERT_EQ(gpus->size(), 2u);
  EXPECT_EQ((*gpus)[0], (proto::Gpu{0, "GPU-fake-nvml-0", "Fake GPU 0", 16384, 1024, 5, 40, {}}));
  // Three entries, one a duplicate: sorted and unique.
  EXPECT_EQ((*gpus)[1],
            (proto::Gpu{1, "GPU-fake-nvml-1", "Fake GPU 1", 32768, 1024, 15, 41, {2001, 2002}}));

  source.reset();
  EXPECT_EQ(fake.Call<int>("FakeNvmlInitialized"), 0);  // nvmlShutdown was called
}

TEST_P(NvmlFakeTest, GrowsTheProcessBufferWhenTooSmall) {
  FakeNvml fake(GetParam());
  fake.Call<void>("FakeNvmlSetDeviceCount", 1u);
  // More than the initial buffer of 32, and 5 more start while we retry.
  fake.Call<void>("FakeNvmlSetProcesses", 0u, 100u, 5u);
  std::string why;
  auto source = NvmlGpuSource::Open(fake.path_, &why);
  ASSERT_NE(source, nullptr) << why;
  auto gpus = source->Read();
  ASSERT_TRUE(gpus.ok()) << gpus.error().message;
  ASSERT_EQ(gpus->size(), 1u);
  const auto& procs = (*gpus)[0].processes;
  ASSERT_EQ(procs.size(), 104u);  // 105 entries, one duplicate
  EXPECT_EQ(procs.front(), 1001);
  EXPECT_EQ(procs.back(), 1104);
  EXPECT_EQ(fake.Call<int>("FakeNvmlProcessCalls"), 2);

  // The grown buffer is kept: the next read needs one call.
  ASSERT_TRUE(source->Read().ok());
  EXPECT_EQ(fake.Call<int>("FakeNvmlProcessCalls"), 3);
}

TEST_P(NvmlFakeTest, FailingFieldsReadAsZero) {
  FakeNvml fake(GetParam());
  fake.Call<void>("FakeNvmlSetDeviceCount", 3u);
  fake.Call<void>("FakeNvmlSetProcesses", 0u, 2u, 0u);
  fake.Call<void>(
      "FakeNvmlFail", 0u,
      kFailUuid | kFailName | kFailMemory | kFailUtilization | kFailTemperature | kFailProcesses);
  fake.Call<void>("FakeNvmlFail", 1u, kFailHandle);
  std::string why;
  auto source = NvmlGpuSource::Open(fake.path_, &why);
  ASSERT_NE(source, nullptr) << why;
  auto gpus = source->Read();
  ASSERT_TRUE(gpus.ok()) << gpus.error().message;
  ASSERT_EQ(gpus->size(), 2u);  // GPU 1 has no handle: left out
  EXPECT_EQ((*gpus)[0], (proto::Gpu{0, "", "", 0, 0, 0, 0, {}}));
  EXPECT_EQ((*gpus)[1].index, 2);
  EXPECT_EQ((*gpus)[1].uuid, "GPU-fake-nvml-2");
}

TEST_P(NvmlFakeTest, CountFailureFailsTheRead) {
  FakeNvml fake(GetParam());
  fake.Call<void>("FakeNvmlSetDeviceCount", 1u);
  std::string why;
  auto source = NvmlGpuSource::Open(fake.path_, &why);
  ASSERT_NE(source, nullptr) << why;
  fake.Call<void>("FakeNvmlSetCountResult", 15);
  auto gpus = source->Read();
  ASSERT_FALSE(gpus.ok());
  EXPECT_EQ(gpus.error().message, "nvmlDeviceGetCount_v2 failed: GPU is lost");
}

TEST_P(NvmlFakeTest, InitFailure) {
  FakeNvml fake(GetParam());
  fake.Call<void>("FakeNvmlSetInitResult", 9);
  std::string why;
  EXPECT_EQ(NvmlGpuSource::Open(fake.path_, &why), nullptr);
  EXPECT_EQ(why, "nvmlInit_v2 in " + fake.path_ + " failed: Driver Not Loaded");
}

INSTANTIATE_TEST_SUITE_P(Variants, NvmlFakeTest, testing::Values(FAKE_NVML_v3, FAKE_NVML_v1),
                         [](const testing::TestParamInfo<const char*>& param_info) {
                           return std::string(param_info.param).find("nvml_v1.") !=
                                          std::string::npos
                                      ? "V1"
                                      : "V3";
                         });

}  // namespace
}  // namespace gpuhub::agent
