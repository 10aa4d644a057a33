#include "agent/leases/lease_store.hpp"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace gpuhub::agent::leases {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

LeaseRecord Running() {
  LeaseRecord r;
  r.task_id = 17;
  r.container = "gpuhub-alice-dev";
  r.command = "python train.py --lr 3e-4 \"quoted\" é";
  r.gpus = {0, 3};
  r.deadline_ms = 1'800'000'000'000;
  r.kill_grace_ms = 30000;
  r.exec_id = "4f1c9a";
  r.process = {4242, 987654321};
  r.groups = {{4242, 987654321}, {4250, 987654400}};
  r.status = "running";
  r.start_ms = 1'799'999'000'000;
  return r;
}

LeaseRecord Ended() {
  LeaseRecord r;
  r.task_id = 18;
  r.container = "gpuhub-bob-x";
  r.command = "exit 3";
  r.gpus = {1};
  r.deadline_ms = 1'800'000'000'000;
  r.kill_grace_ms = 0;
  r.status = "failed";
  r.exit_code = 3;
  r.start_ms = 1;
  r.end_ms = 2;
  r.released = true;
  r.message = "";
  return r;
}

class LeaseStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("gpuhub-leasestore-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string Dir() const { return (dir_ / "state").string(); }
  std::string FilePath() const { return Dir() + "/leases.json"; }
  void Write(const std::string& text) { std::ofstream(FilePath()) << text; }

  fs::path dir_;
};

TEST(LeaseRecordJson, RoundTrip) {
  for (const auto& r : {Running(), Ended(), LeaseRecord{}}) {
    auto back = LeaseRecordFromJson(ToJson(r));
    ASSERT_TRUE(back.ok()) << back.error().message;
    EXPECT_EQ(*back, r);
  }
  auto text = LeaseFileText({Running(), Ended()});
  auto parsed = ParseLeaseFile(text);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_EQ(parsed->leases, (std::vector<LeaseRecord>{Running(), Ended()}));
  EXPECT_TRUE(parsed->problems.empty());
}

TEST(LeaseRecordJson, TheFieldsAsWritten) {
  json j = ToJson(Running());
  EXPECT_EQ(j["pid"], 4242);
  EXPECT_EQ(j["pid_start"], 987654321u);
  EXPECT_EQ(j["groups"], json::parse("[[4242, 987654321], [4250, 987654400]]"));
  EXPECT_TRUE(j["exit_code"].is_null());
  EXPECT_EQ(j["status"], "running");
}

TEST(LeaseRecordJson, RefusesBadRecords) {
  auto bad = [](const char* key, json value) {
    json j = ToJson(Running());
    if (value.is_discarded()) {
      j.erase(key);
    } else {
      j[key] = value;
    }
    return LeaseRecordFromJson(j);
  };
  json missing = json(json::value_t::discarded);
  EXPECT_FALSE(bad("task_id", missing).ok());
  EXPECT_FALSE(bad("task_id", -1).ok());
  EXPECT_FALSE(bad("status", "sleeping").ok());
  EXPECT_FALSE(bad("exit_code", 256).ok());
  EXPECT_FALSE(bad("exit_code", "0").ok());
  EXPECT_FALSE(bad("exit_code", missing).ok());
  EXPECT_FALSE(bad("gpus", json::parse("[-1]")).ok());
  EXPECT_FALSE(bad("groups", json::parse("[[1]]")).ok());
  EXPECT_FALSE(bad("pid_start", -5).ok());
  EXPECT_FALSE(bad("released", 1).ok());
  EXPECT_FALSE(LeaseRecordFromJson(json::array()).ok());
  EXPECT_TRUE(bad("exit_code", -9).ok());
  EXPECT_TRUE(bad("status", "starting").ok());
}

TEST_F(LeaseStoreTest, SaveAndLoad) {
  auto store = LeaseStore::Open(Dir());
  ASSERT_TRUE(store.ok()) << store.error().message;
  EXPECT_EQ(store->path(), FilePath());
  auto none = store->Load();
  ASSERT_TRUE(none.ok()) << none.error().message;
  EXPECT_TRUE(none->leases.empty());

  ASSERT_TRUE(store->Save({Running(), Ended()}).ok());
  auto loaded = store->Load();
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_EQ(loaded->leases, (std::vector<LeaseRecord>{Running(), Ended()}));

  ASSERT_TRUE(store->Save({Ended()}).ok());
  loaded = store->Load();
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->leases, std::vector<LeaseRecord>{Ended()});

  struct stat st {};
  ASSERT_EQ(::stat(FilePath().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  ASSERT_EQ(::stat(Dir().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
}

TEST_F(LeaseStoreTest, AWriteCutShortLeavesTheOldFile) {
  auto store = LeaseStore::Open(Dir());
  ASSERT_TRUE(store.ok());
  ASSERT_TRUE(store->Save({Running()}).ok());
  EXPECT_FALSE(fs::exists(FilePath() + ".tmp"));  // renamed into place
  // A crash in the middle of the next save leaves a partial temporary file only.
  std::string next = LeaseFileText({Running(), Ended()});
  std::ofstream(FilePath() + ".tmp") << next.substr(0, next.size() / 2);
  auto loaded = store->Load();
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_EQ(loaded->leases, std::vector<LeaseRecord>{Running()});
  // The next save replaces the leftover.
  ASSERT_TRUE(store->Save({Running(), Ended()}).ok());
  loaded = store->Load();
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(loaded->leases.size(), 2u);
  EXPECT_FALSE(fs::exists(FilePath() + ".tmp"));
}

TEST_F(LeaseStoreTest, OneAgentPerDirectory) {
  auto first = LeaseStore::Open(Dir());
  ASSERT_TRUE(first.ok());
  auto second = LeaseStore::Open(Dir());
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.error().code, ErrorCode::kConflict);
  EXPECT_NE(second.error().message.find("another gpuhub-agent"), std::string::npos);
}

TEST_F(LeaseStoreTest, TheLockGoesWithTheStore) {
  {
    auto first = LeaseStore::Open(Dir());
    ASSERT_TRUE(first.ok());
  }
  auto again = LeaseStore::Open(Dir());
  EXPECT_TRUE(again.ok());
}

TEST_F(LeaseStoreTest, ACorruptFileIsRefusedAndMovedAside) {
  auto store = LeaseStore::Open(Dir());
  ASSERT_TRUE(store.ok());
  for (const char* text : {"{\"version\": 1, \"leases\": [", "garbage", "[]",
                           "{\"version\": 2, \"leases\": []}", "{\"version\": 1}", ""}) {
    Write(text);
    auto loaded = store->Load();
    ASSERT_FALSE(loaded.ok()) << text;
    EXPECT_EQ(loaded.error().code, ErrorCode::kInvalidArgument) << text;
    EXPECT_NE(loaded.error().message.find(FilePath()), std::string::npos);
  }
  auto moved = store->Quarantine(1234);
  ASSERT_TRUE(moved.ok()) << moved.error().message;
  EXPECT_EQ(*moved, FilePath() + ".bad-1234");
  EXPECT_TRUE(fs::exists(*moved));
  auto fresh = store->Load();
  ASSERT_TRUE(fresh.ok());
  EXPECT_TRUE(fresh->leases.empty());
}

TEST_F(LeaseStoreTest, ABadRecordIsSkippedAndNamed) {
  auto store = LeaseStore::Open(Dir());
  ASSERT_TRUE(store.ok());
  json file = json::parse(LeaseFileText({Running(), Ended()}));
  file["leases"][0]["status"] = "sleeping";
  file["leases"].push_back(ToJson(Ended()));  // the same task twice
  Write(file.dump());
  auto loaded = store->Load();
  ASSERT_TRUE(loaded.ok()) << loaded.error().message;
  EXPECT_EQ(loaded->leases, std::vector<LeaseRecord>{Ended()});
  ASSERT_EQ(loaded->problems.size(), 2u);
  EXPECT_NE(loaded->problems[0].find("lease 0: status"), std::string::npos);
  EXPECT_NE(loaded->problems[1].find("task 18 appears twice"), std::string::npos);
}

}  // namespace
}  // namespace gpuhub::agent::leases
