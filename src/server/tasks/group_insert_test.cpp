#include "server/tasks/group_insert.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <filesystem>
#include <set>
#include <thread>

namespace gpuhub::tasks {
namespace {

namespace net = boost::asio;

class GroupInsertTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/gpuhub-group-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    store_ = std::move(store::OpenSqliteStore((dir_ / "db").string())).value();
    auto user = store_->CreateUser({.account = "alice", .password_hash = "x", .role = "user"});
    ASSERT_TRUE(user.ok());
    user_id_ = user->id;
    ASSERT_TRUE(store_->CreateMachine({.id = "node-01", .token_hash = "h"}).ok());
  }
  void TearDown() override {
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  store::Task MakeTask(int i, const std::string& machine = "node-01") const {
    store::Task t;
    t.user_id = user_id_;
    t.account = "alice";
    t.machine_id = machine;
    t.containername = "dev";
    t.command = "job " + std::to_string(i);
    t.duration = std::chrono::minutes(1);
    t.gpu_count = 1;
    t.status = "queued";
    t.submit_time = TimePoint{} + std::chrono::hours(500000);
    return t;
  }

  std::filesystem::path dir_;
  std::unique_ptr<store::Store> store_;
  int64_t user_id_ = 0;
};

// Many concurrent inserts from two threads: each caller gets its own task
// back, stored durably, and they share transactions.
TEST_F(GroupInsertTest, ConcurrentInsertsShareTransactionsAndEachGetsItsOwnOutcome) {
  constexpr int kInserts = 200;
  GroupInsert inserts(*store_);
  net::io_context ioc;
  std::mutex mu;
  std::vector<std::pair<int, Result<store::Task>>> got;
  for (int i = 0; i < kInserts; ++i) {
    // Every tenth names a machine that does not exist.
    store::Task t = MakeTask(i, i % 10 == 3 ? "node-99" : "node-01");
    net::co_spawn(
        ioc,
        [&, i, t]() -> net::awaitable<void> {
          auto r = co_await inserts.Insert(t);
          std::lock_guard lock(mu);
          got.emplace_back(i, std::move(r));
        },
        net::detached);
  }
  std::thread other([&] { ioc.run(); });
  ioc.run();
  other.join();

  ASSERT_EQ(got.size(), static_cast<size_t>(kInserts));
  std::set<int64_t> ids;
  for (const auto& [i, r] : got) {
    if (i % 10 == 3) {
      ASSERT_FALSE(r.ok()) << i;
      EXPECT_EQ(r.error().message, "Machine not found");
      continue;
    }
    ASSERT_TRUE(r.ok()) << r.error().message;
    EXPECT_EQ(r->command, "job " + std::to_string(i));
    EXPECT_TRUE(ids.insert(r->id).second);
    auto stored = store_->GetTask(r->id);
    ASSERT_TRUE(stored.ok());
    EXPECT_EQ(*stored, *r);
  }
  EXPECT_EQ(ids.size(), static_cast<size_t>(kInserts - kInserts / 10));
  // The 200 arrive much faster than one commit flushes to disk, so they
  // share far fewer transactions than inserts.
  EXPECT_GE(inserts.transactions(), 1u);
  EXPECT_LT(inserts.transactions(), static_cast<size_t>(kInserts) / 2);
}

TEST_F(GroupInsertTest, ALoneInsertIsStoredAtOnce) {
  GroupInsert inserts(*store_);
  net::io_context ioc;
  std::optional<Result<store::Task>> got;
  net::co_spawn(
      ioc, [&]() -> net::awaitable<void> { got = co_await inserts.Insert(MakeTask(1)); },
      net::detached);
  ioc.run();
  ASSERT_TRUE(got && got->ok());
  EXPECT_EQ(inserts.transactions(), 1u);
  EXPECT_TRUE(store_->GetTask((*got)->id).ok());
}

}  // namespace
}  // namespace gpuhub::tasks
