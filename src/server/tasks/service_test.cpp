#include "server/tasks/service.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

namespace gpuhub::tasks {
namespace {

using nlohmann::json;
using std::chrono::seconds;

struct Sent {
  std::string machine;
  std::string type;
  json data;
};

class FakeLink final : public TaskLink {
 public:
  bool SendToAgent(const std::string& machine_id, std::string_view type, json data) override {
    if (!online.contains(machine_id)) return false;
    sent.push_back({machine_id, std::string(type), std::move(data)});
    return true;
  }
  void SendToUser(int64_t user_id, const json& task) override { pushed.push_back({user_id, task}); }
  std::vector<Sent> Take(std::string_view type) {
    std::vector<Sent> out;
    for (auto& s : sent) {
      if (s.type == type) out.push_back(s);
    }
    std::erase_if(sent, [&](const Sent& s) { return s.type == type; });
    return out;
  }
  std::set<std::string> online = {"node-01"};
  std::vector<Sent> sent;
  std::vector<std::pair<int64_t, json>> pushed;
};

class TaskServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/gpuhub-tasks-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    store_ = std::move(store::OpenSqliteStore((dir_ / "db").string())).value();
    for (const char* account : {"alice", "bob", "root"}) {
      store::User u{.account = account,
                    .password_hash = "x",
                    .nickname = account,
                    .role = std::string(account) == "root" ? "admin" : "user"};
      auto created = store_->CreateUser(u);
      ASSERT_TRUE(created.ok());
      who_[account] = {.user_id = created->id, .account = account, .role = u.role};
    }
    ASSERT_TRUE(store_->CreateMachine({.id = "node-01", .token_hash = "h1"}).ok());
    auto image = store_->CreateImage({.name = "i", .image = "i"});
    ASSERT_TRUE(image.ok());
    for (const char* account : {"alice", "bob"}) {
      auto c = store_->CreateContainer({.user_id = who_[account].user_id,
                                        .account = account,
                                        .machine_id = "node-01",
                                        .name = "dev",
                                        .image_id = image->id,
                                        .image = "i",
                                        .status = "running"});
      ASSERT_TRUE(c.ok()) << c.error().message;
    }
    Reopen();
  }
  void TearDown() override {
    service_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Reopen() {
    service_.reset();
    service_ = std::move(TaskService::Open(*store_, link_, clock_,
                                           {.kill_grace = seconds(2),
                                            .lost_grace = seconds(60),
                                            .log_dir = (dir_ / "logs").string()}))
                   .value();
    service_->SetGpuCount("node-01", 4);
    service_->SetOnline("node-01", true);
    service_->OnTasksReport("node-01", reported_);
  }
  TaskRequest Req(int gpus, std::chrono::milliseconds d = seconds(60)) {
    return {.machine_id = "node-01",
            .containername = "dev",
            .command = "train",
            .duration = d,
            .gpu_count = gpus};
  }
  // The service's Submit, run to its end.
  Result<Submitted> SubmitResult(const std::string& who, const TaskRequest& r) {
    boost::asio::io_context ioc;
    std::optional<Result<Submitted>> out;
    auto run = [&]() -> boost::asio::awaitable<void> {
      out = co_await service_->Submit(who_[who], r);
    };
    boost::asio::co_spawn(ioc, run(), [](std::exception_ptr e) {
      if (e) std::rethrow_exception(e);
    });
    ioc.run();
    return std::move(*out);
  }
  Submitted Submit(const std::string& who, TaskRequest r) {
    auto s = SubmitResult(who, r);
    EXPECT_TRUE(s.ok()) << s.error().message;
    clock_.Advance(std::chrono::milliseconds(1));
    return s.ok() ? *s : Submitted{};
  }
  proto::TaskReport Report(int64_t id, std::string status, bool released,
                           std::optional<int> code = std::nullopt) {
    return {.task_id = id, .status = std::move(status), .exit_code = code, .released = released};
  }
  store::Task Get(int64_t id) { return *store_->GetTask(id); }

  std::filesystem::path dir_;
  ManualClock clock_;
  FakeLink link_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<TaskService> service_;
  std::map<std::string, accounts::Principal> who_;
  std::vector<proto::TaskReport> reported_;
};

TEST_F(TaskServiceTest, ARequestStartsAtOnceOnFreeGpus) {
  auto s = Submit("alice", Req(2));
  EXPECT_EQ(s.task.status, "running");
  EXPECT_EQ(s.task.gpu_ids, (std::vector<int>{0, 1}));
  auto starts = link_.Take("task_start");
  ASSERT_EQ(starts.size(), 1u);
  auto start = proto::TaskStartFromJson(starts[0].data);
  ASSERT_TRUE(start.ok());
  EXPECT_EQ(start->container, "gpuhub-alice-dev");
  EXPECT_EQ(start->gpus, (std::vector<int>{0, 1}));
  EXPECT_EQ(start->kill_grace_ms, 2000);
  EXPECT_EQ(Get(s.task.id).status, "running");
}

TEST_F(TaskServiceTest, QueuesUntilTheAgentReleasesTheGpus) {
  auto first = Submit("alice", Req(4));
  auto second = Submit("bob", Req(1));
  EXPECT_EQ(second.task.status, "queued");
  ASSERT_TRUE(second.estimated_start.has_value());
  link_.Take("task_start");
  service_->OnReport("node-01", Report(first.task.id, "completed", false, 0));
  EXPECT_EQ(Get(first.task.id).status, "completed");
  EXPECT_EQ(Get(second.task.id).status, "queued") << "GPUs drain until released";
  service_->OnReport("node-01", Report(first.task.id, "completed", true, 0));
  EXPECT_TRUE(Get(first.task.id).released);
  EXPECT_EQ(Get(second.task.id).status, "running");
  EXPECT_EQ(link_.Take("task_forget").size(), 1u);
}

TEST_F(TaskServiceTest, ValidatesAgainstTheMachine) {
  auto r = SubmitResult("alice", Req(5));
  EXPECT_EQ(r.error().code, ErrorCode::kInvalidArgument);
  auto explicit_gpus = Req(1);
  explicit_gpus.gpu_count.reset();
  explicit_gpus.gpus = std::vector<int>{4};
  EXPECT_EQ(SubmitResult("alice", explicit_gpus).error().code, ErrorCode::kInvalidArgument);
  auto no_machine = Req(1);
  no_machine.machine_id = "nope";
  EXPECT_EQ(SubmitResult("alice", no_machine).error().message, "Machine not found");
  auto no_container = Req(1);
  no_container.containername = "other";
  EXPECT_EQ(SubmitResult("alice", no_container).error().message, "Container not found");
  EXPECT_EQ(SubmitResult("alice", Req(1, std::chrono::hours(73))).error().message,
            "duration must be at most 72h");
  EXPECT_TRUE(store_->ListTasks({})->empty());
}

TEST_F(TaskServiceTest, CancelQueuedAndRunning) {
  auto running = Submit("alice", Req(4));
  auto queued = Submit("alice", Req(4));
  EXPECT_EQ(service_->Cancel(who_["bob"], {queued.task.id, "node-01"}).error().code,
            ErrorCode::kPermissionDenied);
  EXPECT_EQ(service_->Cancel(who_["alice"], {queued.task.id, "node-02"}).error().message,
            "Task not found");
  ASSERT_TRUE(service_->Cancel(who_["alice"], {queued.task.id, "node-01"}).ok());
  EXPECT_EQ(Get(queued.task.id).status, "cancelled");
  ASSERT_TRUE(service_->Cancel(who_["root"], {running.task.id, "node-01"}).ok());
  EXPECT_EQ(Get(running.task.id).status, "cancelled");
  EXPECT_EQ(link_.Take("task_stop").size(), 1u);
  EXPECT_EQ(service_->Cancel(who_["alice"], {running.task.id, "node-01"}).error().message,
            "Task already finished");
  // The agent then reports the stop; the cancel stays the status.
  service_->OnReport("node-01", Report(running.task.id, "cancelled", true, 143));
  EXPECT_EQ(Get(running.task.id).status, "cancelled");
  EXPECT_TRUE(Get(running.task.id).released);
}

TEST_F(TaskServiceTest, ACancelBetweenStoringAndQueueingHolds) {
  // Submit, held between the commit and queueing the task (the io_context
  // that would resume it is not run), so that a cancel comes in between.
  boost::asio::io_context ioc;
  std::optional<Result<Submitted>> out;
  auto run = [&]() -> boost::asio::awaitable<void> {
    out = co_await service_->Submit(who_["alice"], Req(1));
  };
  boost::asio::co_spawn(ioc, run(), [](std::exception_ptr e) {
    if (e) std::rethrow_exception(e);
  });
  ioc.poll();
  std::vector<store::Task> stored;
  for (int i = 0; i < 1000 && stored.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    stored = *store_->ListTasks({});
  }
  ASSERT_EQ(stored.size(), 1u);
  ASSERT_EQ(stored[0].status, "queued");
  ASSERT_TRUE(service_->Cancel(who_["alice"], {stored[0].id, "node-01"}).ok());
  for (int i = 0; i < 1000 && !out; ++i) {
    ioc.restart();
    ioc.run_for(std::chrono::milliseconds(5));
  }
  ASSERT_TRUE(out && out->ok());
  EXPECT_EQ((*out)->task.status, "cancelled");
  EXPECT_FALSE((*out)->estimated_start.has_value());
  EXPECT_EQ(Get(stored[0].id).status, "cancelled");
  EXPECT_TRUE(link_.Take("task_start").empty());
  // Nor does it start later, when the scheduler runs again.
  Submit("bob", Req(4));
  EXPECT_EQ(Get(stored[0].id).status, "cancelled");
}

TEST_F(TaskServiceTest, NothingStartsOnAnOfflineMachine) {
  service_->SetOnline("node-01", false);
  auto s = Submit("alice", Req(1));
  EXPECT_EQ(s.task.status, "queued");
  service_->SetOnline("node-01", true);
  service_->OnTasksReport("node-01", {});
  EXPECT_EQ(Get(s.task.id).status, "running");
}

TEST_F(TaskServiceTest, RestartRestoresQueueAndLeases) {
  auto running = Submit("alice", Req(4));
  auto queued = Submit("bob", Req(2));
  reported_ = {Report(running.task.id, "running", false)};
  Reopen();
  EXPECT_EQ(Get(running.task.id).status, "running");
  EXPECT_EQ(Get(queued.task.id).status, "queued") << "its GPUs are still leased";
  service_->OnReport("node-01", Report(running.task.id, "completed", true, 0));
  EXPECT_EQ(Get(queued.task.id).status, "running");
}

TEST_F(TaskServiceTest, AgentThatForgotALeaseGetsItAgainWhileItsTimeLasts) {
  auto s = Submit("alice", Req(1, seconds(30)));
  link_.Take("task_start");
  service_->OnTasksReport("node-01", {});
  EXPECT_EQ(link_.Take("task_start").size(), 1u);
  clock_.Advance(seconds(31));
  service_->OnTasksReport("node-01", {});
  EXPECT_EQ(Get(s.task.id).status, "lost");
  EXPECT_TRUE(Get(s.task.id).released);
}

TEST_F(TaskServiceTest, LeasesOfAMachineOfflinePastTheGraceAreLost) {
  auto s = Submit("alice", Req(1, std::chrono::hours(1)));
  service_->SetOnline("node-01", false);
  clock_.Advance(seconds(59));
  service_->Sweep();
  EXPECT_EQ(Get(s.task.id).status, "running");
  clock_.Advance(seconds(2));
  service_->Sweep();
  EXPECT_EQ(Get(s.task.id).status, "lost");
  // Back online, the agent still runs it: stop it there; the GPU waits for that.
  service_->SetOnline("node-01", true);
  auto other = Submit("bob", Req(4));
  service_->OnTasksReport("node-01", {Report(s.task.id, "running", false)});
  EXPECT_EQ(link_.Take("task_stop").size(), 1u);
  EXPECT_EQ(Get(other.task.id).status, "queued");
  service_->OnReport("node-01", Report(s.task.id, "cancelled", true));
  EXPECT_EQ(Get(s.task.id).status, "lost");
  EXPECT_EQ(Get(other.task.id).status, "running");
}

TEST_F(TaskServiceTest, OutputKeepsTheLast64KiB) {
  auto s = Submit("alice", Req(1));
  std::string chunk(10000, 'x');
  for (int i = 0; i < 20; ++i) {
    chunk[0] = static_cast<char>('a' + i);
    service_->OnOutput("node-01", {s.task.id, chunk});
  }
  auto log = service_->Log(who_["alice"], s.task.id);
  ASSERT_TRUE(log.ok());
  EXPECT_EQ(log->size(), 64u << 10);
  EXPECT_EQ(log->back(), 'x');
  EXPECT_EQ(service_->Log(who_["bob"], s.task.id).error().code, ErrorCode::kPermissionDenied);
  service_->OnOutput("node-02", {s.task.id, "not yours"});
  EXPECT_EQ(service_->Log(who_["root"], s.task.id)->find("not yours"), std::string::npos);
}

TEST_F(TaskServiceTest, HoldersFollowTheLeases) {
  std::map<int, std::pair<int64_t, std::string>> holders;
  service_->OnHoldersChanged(
      [&](const std::string&, const TaskService::GpuHolders& h) { holders = h; });
  auto s = Submit("alice", Req(2));
  EXPECT_EQ(holders.size(), 2u);
  EXPECT_EQ(holders[1], std::make_pair(s.task.id, std::string("alice")));
  service_->OnReport("node-01", Report(s.task.id, "completed", true, 0));
  EXPECT_TRUE(holders.empty());
}

TEST_F(TaskServiceTest, ListsAndEvents) {
  auto a = Submit("alice", Req(1));
  Submit("bob", Req(1));
  EXPECT_EQ(service_->ListForUser("alice", false)->size(), 1u);
  EXPECT_EQ(service_->ListForMachine("node-01", false)->size(), 2u);
  EXPECT_TRUE(service_->ListForUser("nobody", false)->empty());
  service_->OnReport("node-01", Report(a.task.id, "completed", true, 0));
  clock_.Advance(std::chrono::hours(25));
  EXPECT_EQ(service_->ListForUser("alice", false)->size(), 0u);
  EXPECT_EQ(service_->ListForUser("alice", true)->size(), 1u);
  ASSERT_FALSE(link_.pushed.empty());
  EXPECT_EQ(link_.pushed.back().second["status"], "completed");
  EXPECT_EQ(link_.pushed.back().first, who_["alice"].user_id);
}

}  // namespace
}  // namespace gpuhub::tasks
