#include "agent/inventory/fake_gpus.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "common/file_util.hpp"

namespace gpuhub::agent {
namespace {

class FakeGpuSourceTest : public testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = testing::TempDir() + "/fake_gpus_XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    path_ = dir_ + "/gpus.json";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  void Write(const std::string& text) { ASSERT_TRUE(WriteFileAtomic(path_, text, 0600).ok()); }
  // Overwrites in place (same inode), as an editor without rename would.
  void Overwrite(const std::string& text) {
    std::ofstream out(path_, std::ios::trunc);
    out << text;
  }

  std::string dir_, path_;
};

const char* kTwo = R"([
  {"name": "Fake A100", "memory_total": 40960},
  {"name": "Fake H100", "memory_total": 81920, "memory_used": 1024, "utilization": 37,
   "temperature": 45, "uuid": "GPU-1234", "processes": [4242, 17]}
])";

TEST_F(FakeGpuSourceTest, ValidFile) {
  Write(kTwo);
  FakeGpuSource source(path_);
  auto gpus = source.Read();
  ASSERT_TRUE(gpus.ok()) << gpus.error().message;
  ASSERT_EQ(gpus->size(), 2u);
  const proto::Gpu& a = (*gpus)[0];
  EXPECT_EQ(a.index, 0);
  EXPECT_EQ(a.name, "Fake A100");
  EXPECT_EQ(a.memory_total, 40960);
  EXPECT_EQ(a.memory_used, 0);
  EXPECT_EQ(a.utilization, 0);
  EXPECT_EQ(a.temperature, 0);
  EXPECT_TRUE(a.processes.empty());
  EXPECT_EQ(a.uuid.rfind("GPU-fake-0-", 0), 0u) << a.uuid;
  EXPECT_EQ(a.uuid.size(), std::string("GPU-fake-0-").size() + 8);
  EXPECT_EQ((*gpus)[1], (proto::Gpu{1, "GPU-1234", "Fake H100", 81920, 1024, 37, 45, {4242, 17}}));
  EXPECT_EQ(source.Describe(), "fake GPUs from " + path_);
}

TEST_F(FakeGpuSourceTest, DefaultUuidsAreStableAndDistinct) {
  const char* text = R"([{"name": "A", "memory_total": 1}, {"name": "A", "memory_total": 1}])";
  auto one = FakeGpuSource::Parse(text, "/etc/gpuhub/gpus.json");
  auto two = FakeGpuSource::Parse(text, "/etc/gpuhub/gpus.json");
  auto other = FakeGpuSource::Parse(text, "/srv/other.json");
  ASSERT_TRUE(one.ok() && two.ok() && other.ok());
  EXPECT_EQ(*one, *two);
  EXPECT_NE((*one)[0].uuid, (*one)[1].uuid);
  EXPECT_NE((*one)[0].uuid, (*other)[0].uuid);
}

TEST_F(FakeGpuSourceTest, EmptyArrayIsNoGpus) {
  auto gpus = FakeGpuSource::Parse("[]", "x");
  ASSERT_TRUE(gpus.ok());
  EXPECT_TRUE(gpus->empty());
}

TEST_F(FakeGpuSourceTest, ErrorsNameIndexAndField) {
  struct Case {
    const char* text;
    const char* expect;  // a substring of the message
  };
  for (const Case& c : {
           Case{"", "not valid JSON"},
           Case{"[", "not valid JSON"},
           Case{R"({"name": "x"})", "must be a JSON array"},
           Case{R"([5])", "GPU 0 must be a JSON object"},
           Case{R"([{"memory_total": 1}])", "GPU 0 field \"name\" is missing"},
           Case{R"([{"name": "a", "memory_total": 1}, {"name": "b"}])",
                "GPU 1 field \"memory_total\" is missing"},
           Case{R"([{"name": 7, "memory_total": 1}])", "GPU 0 field \"name\" must be"},
           Case{R"([{"name": "", "memory_total": 1}])", "GPU 0 field \"name\" must be"},
           Case{R"([{"name": "a", "memory_total": "1"}])", "GPU 0 field \"memory_total\" must be"},
           Case{R"([{"name": "a", "memory_total": -1}])", "GPU 0 field \"memory_total\" must be"},
           Case{R"([{"name": "a", "memory_total": 1.5}])", "GPU 0 field \"memory_total\" must be"},
           Case{R"([{"name": "a", "memory_total": 10, "memory_used": 11}])",
                "GPU 0 field \"memory_used\" must be"},
           Case{R"([{"name": "a", "memory_total": 10, "utilization": 101}])",
                "GPU 0 field \"utilization\" must be"},
           Case{R"([{"name": "a", "memory_total": 10, "temperature": null}])",
                "GPU 0 field \"temperature\" must be"},
           Case{R"([{"name": "a", "memory_total": 10, "uuid": 5}])",
                "GPU 0 field \"uuid\" must be"},
           Case{R"([{"name": "a", "memory_total": 10, "processes": 5}])",
                "GPU 0 field \"processes\" must be"},
           Case{R"([{"name": "a", "memory_total": 10, "processes": [1, -2]}])",
                "GPU 0 field \"processes[1]\" must be"},
           Case{R"([{"name": "a", "memory_total": 10, "memory_toal": 5}])",
                "GPU 0: unknown field \"memory_toal\""},
           Case{R"([{"name": "a", "memory_total": 1, "uuid": "U"},
                    {"name": "b", "memory_total": 1, "uuid": "U"}])",
                "GPU 1 field \"uuid\" repeats the uuid of GPU 0"},
       }) {
    auto gpus = FakeGpuSource::Parse(c.text, "/f.json");
    ASSERT_FALSE(gpus.ok()) << c.text;
    EXPECT_EQ(gpus.error().code, ErrorCode::kInvalidArgument);
    EXPECT_NE(gpus.error().message.find(c.expect), std::string::npos)
        << c.text << "\n  got: " << gpus.error().message;
    EXPECT_EQ(gpus.error().message.rfind("/f.json: ", 0), 0u) << gpus.error().message;
  }
}

TEST_F(FakeGpuSourceTest, MissingFile) {
  FakeGpuSource source(path_);
  auto gpus = source.Read();
  ASSERT_FALSE(gpus.ok());
  EXPECT_EQ(gpus.error().code, ErrorCode::kNotFound);
  EXPECT_NE(gpus.error().message.find(path_), std::string::npos);
}

TEST_F(FakeGpuSourceTest, RereadsOnlyWhenTheFileChanges) {
  Write(kTwo);
  FakeGpuSource source(path_);
  ASSERT_TRUE(source.Read().ok());
  ASSERT_TRUE(source.Read().ok());
  EXPECT_EQ(source.parse_count(), 1);

  // Replaced by rename: a new inode.
  Write(R"([{"name": "Only", "memory_total": 1}])");
  auto gpus = source.Read();
  ASSERT_TRUE(gpus.ok()) << gpus.error().message;
  ASSERT_EQ(gpus->size(), 1u);
  EXPECT_EQ((*gpus)[0].name, "Only");
  EXPECT_EQ(source.parse_count(), 2);

  // Rewritten in place with another size.
  Overwrite(R"([{"name": "Other", "memory_total": 22}])");
  gpus = source.Read();
  ASSERT_TRUE(gpus.ok()) << gpus.error().message;
  ASSERT_EQ(gpus->size(), 1u);
  EXPECT_EQ((*gpus)[0].name, "Other");
  EXPECT_EQ(source.parse_count(), 3);
}

TEST_F(FakeGpuSourceTest, InvalidFileGivesTheSameErrorUntilFixed) {
  Write(kTwo);
  FakeGpuSource source(path_);
  ASSERT_TRUE(source.Read().ok());

  Write(R"([{"name": "a"}])");
  auto bad = source.Read();
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().message.find("GPU 0 field \"memory_total\" is missing"), std::string::npos);
  auto again = source.Read();
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().message, bad.error().message);
  EXPECT_EQ(source.parse_count(), 2);  // not re-parsed while unchanged

  Write(kTwo);
  auto fixed = source.Read();
  ASSERT_TRUE(fixed.ok()) << fixed.error().message;
  EXPECT_EQ(fixed->size(), 2u);

  ASSERT_EQ(::unlink(path_.c_str()), 0);
  EXPECT_FALSE(source.Read().ok());
  Write(kTwo);
  EXPECT_TRUE(source.Read().ok());
}

}  // namespace
}  // namespace gpuhub::agent
