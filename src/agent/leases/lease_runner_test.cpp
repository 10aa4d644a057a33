#include "agent/leases/lease_runner.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/co_spawn.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "common/file_util.hpp"

namespace gpuhub::agent::leases {
namespace {

namespace fs = std::filesystem;
namespace net = boost::asio;
using nlohmann::json;
using std::chrono::milliseconds;

constexpr int64_t kNow = 1'800'000'000'000;

struct Message {
  std::string type;
  json data;
  std::chrono::steady_clock::time_point at = std::chrono::steady_clock::now();
};

// A process of this test standing in for a lease's command: a group leader that sleeps, with
// SIGTERM ignored when asked.
pid_t Sleeper(bool ignore_term) {
  pid_t pid = ::fork();
  if (pid == 0) {
    ::setpgid(0, 0);
    if (ignore_term) ::signal(SIGTERM, SIG_IGN);
    for (;;) ::pause();
  }
  ::setpgid(pid, pid);
  return pid;
}

class RunnerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("gpuhub-leaserunner-" + std::to_string(::getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    auto store = LeaseStore::Open(dir_.string());
    ASSERT_TRUE(store.ok()) << store.error().message;
    store_ = std::make_unique<LeaseStore>(std::move(store).value());
    clock_.Set(TimePoint(milliseconds(kNow)));
  }
  void TearDown() override {
    for (pid_t pid : children_) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    fs::remove_all(dir_);
  }

  std::unique_ptr<LeaseRunner> MakeRunner(runtime::DockerClient* docker = nullptr) {
    return std::make_unique<LeaseRunner>(ioc_, clock_, docker, store_.get(), ProcessTree(),
                                         [this](std::string_view type, json data) {
                                           if (!connected_) return false;
                                           sent_.push_back({std::string(type), std::move(data)});
                                           return true;
                                         });
  }

  pid_t Child(bool ignore_term) {
    pid_t pid = Sleeper(ignore_term);
    children_.push_back(pid);
    return pid;
  }
  ProcessId IdOf(pid_t pid) {
    auto s = ProcessTree().Read(pid);
    EXPECT_TRUE(s);
    return s ? ProcessId{s->pid, s->start_time} : ProcessId{};
  }
  // A pid that no longer runs, with the start time it had.
  ProcessId DeadProcess() {
    pid_t pid = Sleeper(false);
    ProcessId id = IdOf(pid);
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return id;
  }

  LeaseRecord RunningRecord(int64_t task_id, ProcessId process, int64_t deadline_ms) {
    LeaseRecord r;
    r.task_id = task_id;
    r.container = "gpuhub-alice-dev";
    r.command = "python train.py";
    r.gpus = {0};
    r.deadline_ms = deadline_ms;
    r.kill_grace_ms = 1000;
    r.exec_id = "e1";
    r.process = process;
    r.groups = {process};
    r.status = "running";
    r.start_ms = kNow - 60'000;
    return r;
  }

  std::vector<proto::TaskReport> Reports() const {
    std::vector<proto::TaskReport> out;
    for (const auto& m : sent_) {
      if (m.type != "task") continue;
      auto r = proto::TaskReportFromJson(m.data);
      EXPECT_TRUE(r.ok()) << m.data.dump();
      if (r.ok()) out.push_back(*r);
    }
    return out;
  }
  std::vector<LeaseRecord> OnDisk() const {
    auto text = ReadFile(store_->path(), 1 << 20);
    if (!text.ok()) return {};
    auto parsed = ParseLeaseFile(*text);
    EXPECT_TRUE(parsed.ok());
    return parsed.ok() ? parsed->leases : std::vector<LeaseRecord>{};
  }
  // Ticks (in real time: signals take a moment) until `done` or 5 s.
  template <typename F>
  bool TickUntil(LeaseRunner& runner, F done) {
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    for (;;) {
      runner.Tick();
      if (done()) return true;
      if (std::chrono::steady_clock::now() > end) return false;
      std::this_thread::sleep_for(milliseconds(10));
    }
  }
  void Deliver(LeaseRunner& runner, const std::string& type, const json& data) {
    runner.OnMessage(type, data);
  }
  json StartJson(int64_t task_id, int64_t deadline_ms) {
    proto::TaskStart t;
    t.task_id = task_id;
    t.container = "gpuhub-alice-dev";
    t.command = "echo hi";
    t.gpus = {1, 2};
    t.deadline_ms = deadline_ms;
    t.kill_grace_ms = 1000;
    return proto::ToJson(t);
  }
  static json IdJson(int64_t task_id) {
    json j = json::object();
    j["task_id"] = task_id;
    return j;
  }

  fs::path dir_;
  net::io_context ioc_;
  ManualClock clock_;
  std::unique_ptr<LeaseStore> store_;
  std::vector<Message> sent_;
  bool connected_ = true;
  std::vector<pid_t> children_;
};

TEST(ExecSpec, CommandAndEnvironment) {
  EXPECT_EQ(ExecCommand("echo $X; sleep 1"),
            (std::vector<std::string>{"sh", "-c", "echo $X; sleep 1"}));
  EXPECT_EQ(ExecEnv({0, 3}),
            (std::vector<std::string>{"CUDA_VISIBLE_DEVICES=0,3", "NVIDIA_VISIBLE_DEVICES=0,3"}));
  EXPECT_EQ(ExecEnv({}),
            (std::vector<std::string>{"CUDA_VISIBLE_DEVICES=", "NVIDIA_VISIBLE_DEVICES="}));
}

TEST_F(RunnerTest, WithoutARuntimeEveryStartFails) {
  auto runner = MakeRunner();
  runner->OnConnected();
  ASSERT_EQ(sent_.size(), 1u);
  EXPECT_EQ(sent_[0].type, "tasks");
  EXPECT_EQ(sent_[0].data, json::parse(R"({"tasks": []})"));

  Deliver(*runner, "task_start", StartJson(5, kNow + 60'000));
  auto reports = Reports();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].task_id, 5);
  EXPECT_EQ(reports[0].status, "failed");
  EXPECT_EQ(reports[0].exit_code, std::nullopt);
  EXPECT_EQ(reports[0].start_ms, 0);
  EXPECT_EQ(reports[0].end_ms, kNow);
  EXPECT_TRUE(reports[0].released);
  EXPECT_EQ(reports[0].message, kNoRuntimeMessage);
  ASSERT_EQ(OnDisk().size(), 1u);

  // A resend (after a reconnect) is answered with what is known; nothing starts again.
  Deliver(*runner, "task_start", StartJson(5, kNow + 60'000));
  ASSERT_EQ(Reports().size(), 2u);
  EXPECT_EQ(Reports()[1], reports[0]);

  Deliver(*runner, "task_forget", IdJson(5));
  EXPECT_FALSE(runner->Find(5));
  EXPECT_TRUE(OnDisk().empty());
}

TEST_F(RunnerTest, BadMessagesAreIgnored) {
  auto runner = MakeRunner();
  runner->OnConnected();
  sent_.clear();
  json start = StartJson(5, kNow + 1000);
  start.erase("gpus");
  Deliver(*runner, "task_start", start);
  Deliver(*runner, "task_start", json::array());
  Deliver(*runner, "task_stop", json::parse(R"({"task_id": "5"})"));
  Deliver(*runner, "task_forget", json::object());
  Deliver(*runner, "container", json::object());
  EXPECT_TRUE(sent_.empty());
  EXPECT_TRUE(runner->Leases().empty());
}

TEST_F(RunnerTest, StopOrForgetOfAnUnknownLeaseSaysNothing) {
  auto runner = MakeRunner();
  runner->OnConnected();
  sent_.clear();
  Deliver(*runner, "task_stop", IdJson(99));
  Deliver(*runner, "task_forget", IdJson(99));
  EXPECT_TRUE(sent_.empty());
}

TEST_F(RunnerTest, DeadlinePassedWhileTheAgentWasDown) {
  pid_t pid = Child(false);
  auto runner = MakeRunner();
  runner->Restore({RunningRecord(7, IdOf(pid), kNow - 5000)});
  runner->OnConnected();
  ASSERT_EQ(sent_.size(), 1u);
  auto tasks = proto::TasksReportFromJson(sent_[0].data);
  ASSERT_TRUE(tasks.ok());
  ASSERT_EQ(tasks->size(), 1u);
  EXPECT_EQ((*tasks)[0].status, "running");

  runner->Tick();  // the deadline is enforced at once: SIGTERM
  auto reports = Reports();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].status, "expired");
  EXPECT_EQ(reports[0].end_ms, kNow);
  EXPECT_FALSE(reports[0].released);
  EXPECT_EQ(OnDisk()[0].status, "expired");

  ASSERT_TRUE(TickUntil(*runner, [&] { return runner->Find(7)->released; }));
  reports = Reports();
  ASSERT_EQ(reports.size(), 2u);
  EXPECT_EQ(reports[1].status, "expired");
  EXPECT_TRUE(reports[1].released);
  EXPECT_EQ(reports[1].exit_code, std::nullopt);  // no runtime to ask
  EXPECT_TRUE(OnDisk()[0].released);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
}

TEST_F(RunnerTest, SigkillAfterTheGracePeriod) {
  pid_t pid = Child(true);  // ignores SIGTERM
  auto runner = MakeRunner();
  runner->Restore({RunningRecord(7, IdOf(pid), kNow + 10'000)});
  runner->OnConnected();
  sent_.clear();
  runner->Tick();
  EXPECT_TRUE(sent_.empty());  // still running

  clock_.Advance(milliseconds(10'000));
  runner->Tick();
  ASSERT_EQ(Reports().size(), 1u);
  EXPECT_EQ(Reports()[0].status, "expired");
  // SIGTERM is ignored: the lease holds on through the grace period.
  for (int i = 0; i < 20; ++i) {
    std::this_thread::sleep_for(milliseconds(10));
    clock_.Advance(milliseconds(40));
    runner->Tick();
  }
  EXPECT_FALSE(runner->Find(7)->released);
  EXPECT_TRUE(ProcessTree().Alive(IdOf(pid)));

  clock_.Advance(milliseconds(200));  // 1000 ms after the SIGTERM: SIGKILL
  ASSERT_TRUE(TickUntil(*runner, [&] { return runner->Find(7)->released; }));
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  EXPECT_EQ(Reports().back().status, "expired");
  EXPECT_TRUE(Reports().back().released);
}

TEST_F(RunnerTest, ResumesALiveLeaseAndKeepsItsDeadline) {
  pid_t pid = Child(false);
  auto runner = MakeRunner();
  runner->Restore({RunningRecord(7, IdOf(pid), kNow + 30'000)});
  runner->OnConnected();
  sent_.clear();
  for (int i = 0; i < 5; ++i) {
    clock_.Advance(milliseconds(5000));
    runner->Tick();
  }
  EXPECT_TRUE(sent_.empty());
  EXPECT_EQ(runner->Find(7)->status, "running");
  clock_.Advance(milliseconds(5000));
  runner->Tick();
  ASSERT_EQ(Reports().size(), 1u);
  EXPECT_EQ(Reports()[0].status, "expired");
  EXPECT_EQ(Reports()[0].end_ms, kNow + 30'000);
  ASSERT_TRUE(TickUntil(*runner, [&] { return runner->Find(7)->released; }));
}

TEST_F(RunnerTest, ALeaseWhoseProcessEndedWhileTheAgentWasDown) {
  const ProcessId dead = DeadProcess();
  auto runner = MakeRunner();
  runner->Restore({RunningRecord(7, dead, kNow + 30'000)});
  auto rec = runner->Find(7);
  ASSERT_TRUE(rec);
  EXPECT_EQ(rec->status, "failed");
  EXPECT_EQ(rec->exit_code, std::nullopt);
  EXPECT_EQ(rec->end_ms, kNow);
  EXPECT_TRUE(rec->released);
  EXPECT_NE(rec->message.find("exit code is unknown"), std::string::npos);
  EXPECT_EQ(OnDisk(), runner->Leases());

  runner->OnConnected();
  auto tasks = proto::TasksReportFromJson(sent_.at(0).data);
  ASSERT_TRUE(tasks.ok());
  EXPECT_EQ(*tasks, std::vector<proto::TaskReport>{ReportOf(*rec)});
}

TEST_F(RunnerTest, APidReusedByAnotherProcessIsNotTheLease) {
  pid_t pid = Child(false);
  ProcessId other = IdOf(pid);
  other.start_time += 1;  // as if the lease's process had ended and its PID been reused
  auto runner = MakeRunner();
  runner->Restore({RunningRecord(7, other, kNow - 1)});
  runner->Tick();
  EXPECT_TRUE(runner->Find(7)->released);
  EXPECT_EQ(runner->Find(7)->status, "failed");
  EXPECT_TRUE(ProcessTree().Alive(IdOf(pid)));  // left alone
}

TEST_F(RunnerTest, ALeaseBeingEndedIsEndedAgain) {
  pid_t pid = Child(true);
  LeaseRecord r = RunningRecord(7, IdOf(pid), kNow + 30'000);
  r.status = "cancelled";
  r.end_ms = kNow - 5000;  // ended 5 s ago; the grace period (1 s) is over
  auto runner = MakeRunner();
  runner->Restore({r});
  ASSERT_TRUE(TickUntil(*runner, [&] { return runner->Find(7)->released; }));
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
  EXPECT_EQ(runner->Find(7)->status, "cancelled");
  EXPECT_EQ(runner->Find(7)->end_ms, kNow - 5000);
}

TEST_F(RunnerTest, ALeaseThatWasStartingFails) {
  LeaseRecord r = RunningRecord(7, {}, kNow + 30'000);
  r.status = kStarting;
  r.exec_id.clear();
  r.start_ms = 0;
  auto runner = MakeRunner();
  runner->Restore({r});
  auto rec = runner->Find(7);
  EXPECT_EQ(rec->status, "failed");
  EXPECT_TRUE(rec->released);
  EXPECT_EQ(rec->start_ms, 0);
  EXPECT_NE(rec->message.find("restarted while starting"), std::string::npos);
}

TEST_F(RunnerTest, StopCancelsAndForgetWaitsForTheRelease) {
  pid_t pid = Child(false);
  auto runner = MakeRunner();
  runner->Restore({RunningRecord(7, IdOf(pid), kNow + 30'000)});
  runner->OnConnected();
  sent_.clear();
  Deliver(*runner, "task_forget", IdJson(7));  // not ended: kept
  ASSERT_TRUE(runner->Find(7));

  Deliver(*runner, "task_stop", IdJson(7));
  ASSERT_EQ(Reports().size(), 1u);
  EXPECT_EQ(Reports()[0].status, "cancelled");
  ASSERT_TRUE(TickUntil(*runner, [&] { return runner->Find(7)->released; }));
  EXPECT_EQ(Reports().size(), 2u);

  // A second stop re-reports; a start of the same lease too; neither changes anything.
  Deliver(*runner, "task_stop", IdJson(7));
  Deliver(*runner, "task_start", StartJson(7, kNow + 30'000));
  auto reports = Reports();
  ASSERT_EQ(reports.size(), 4u);
  EXPECT_EQ(reports[2], reports[1]);
  EXPECT_EQ(reports[3], reports[1]);

  Deliver(*runner, "task_forget", IdJson(7));
  EXPECT_FALSE(runner->Find(7));
  EXPECT_TRUE(OnDisk().empty());
}

TEST_F(RunnerTest, ReportsMissedWhileDisconnectedComeWithTheNextConnection) {
  pid_t pid = Child(false);
  auto runner = MakeRunner();
  runner->Restore({RunningRecord(7, IdOf(pid), kNow + 1000)});
  connected_ = false;
  clock_.Advance(milliseconds(1000));
  ASSERT_TRUE(TickUntil(*runner, [&] { return runner->Find(7)->released; }));
  EXPECT_TRUE(sent_.empty());
  connected_ = true;
  runner->OnConnected();
  ASSERT_EQ(sent_.size(), 1u);
  EXPECT_EQ(sent_[0].type, "tasks");
  auto tasks = proto::TasksReportFromJson(sent_[0].data);
  ASSERT_TRUE(tasks.ok());
  ASSERT_EQ(tasks->size(), 1u);
  EXPECT_EQ((*tasks)[0].status, "expired");
  EXPECT_TRUE((*tasks)[0].released);
  runner->Tick();
  EXPECT_EQ(sent_.size(), 1u);  // nothing new to say
}

TEST_F(RunnerTest, AStartThatCannotReachTheRuntimeFails) {
  runtime::DockerClient docker((dir_ / "no.sock").string(), std::chrono::seconds(2));
  auto runner = MakeRunner(&docker);
  runner->OnConnected();
  sent_.clear();
  Deliver(*runner, "task_start", StartJson(8, kNow + 60'000));
  EXPECT_TRUE(sent_.empty());  // not reported while starting
  EXPECT_EQ(OnDisk().at(0).status, kStarting);
  ioc_.run();
  auto reports = Reports();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].status, "failed");
  EXPECT_TRUE(reports[0].released);
  EXPECT_NE(reports[0].message.find("cannot start the command in container gpuhub-alice-dev"),
            std::string::npos)
      << reports[0].message;
  EXPECT_FALSE(runner->Busy());
}

TEST_F(RunnerTest, AStopWhileStartingIsTheEnd) {
  runtime::DockerClient docker((dir_ / "no.sock").string(), std::chrono::seconds(2));
  auto runner = MakeRunner(&docker);
  runner->OnConnected();
  sent_.clear();
  Deliver(*runner, "task_start", StartJson(8, kNow + 60'000));
  Deliver(*runner, "task_stop", IdJson(8));
  Deliver(*runner, "task_forget", IdJson(8));  // not ended: kept
  runner->OnConnected();                       // a lease being started is not reported yet
  ASSERT_EQ(sent_.size(), 1u);
  EXPECT_EQ(sent_[0].data, json::parse(R"({"tasks": []})"));
  ioc_.run();
  auto reports = Reports();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].status, "cancelled");
  EXPECT_EQ(reports[0].start_ms, 0);
  EXPECT_TRUE(reports[0].released);
  EXPECT_EQ(OnDisk(), runner->Leases());
}

TEST_F(RunnerTest, AStartPastItsDeadlineExpiresAtOnce) {
  runtime::DockerClient docker((dir_ / "no.sock").string(), std::chrono::seconds(2));
  auto runner = MakeRunner(&docker);
  runner->OnConnected();
  sent_.clear();
  Deliver(*runner, "task_start", StartJson(8, kNow));
  auto reports = Reports();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_EQ(reports[0].status, "expired");
  EXPECT_EQ(reports[0].start_ms, 0);
  EXPECT_TRUE(reports[0].released);
  EXPECT_FALSE(runner->Busy());
}

// --- Against a real engine, only when GPUHUB_TEST_DOCKER_HOST names one (e.g.
// unix:///tmp/pt/podman.sock) with the image GPUHUB_TEST_IMAGE (default
// localhost/gpuhub-test:latest, a busybox). Skipped otherwise.

class LiveLeaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* host = std::getenv("GPUHUB_TEST_DOCKER_HOST");
    if (!host) GTEST_SKIP() << "GPUHUB_TEST_DOCKER_HOST is not set";
    const char* image_env = std::getenv("GPUHUB_TEST_IMAGE");
    std::string image = image_env ? image_env : "localhost/gpuhub-test:latest";
    auto path = runtime::ParseDockerHost(host);
    ASSERT_TRUE(path.ok()) << path.error().message;
    docker_ = std::make_unique<runtime::DockerClient>(*path, std::chrono::seconds(10));
    dir_ = fs::temp_directory_path() / ("gpuhub-leaselive-" + std::to_string(::getpid()));
    fs::remove_all(dir_);
    (void)Await(docker_->RemoveContainer(kContainer, true));
    json body = json::object();
    body["Image"] = image;
    body["Cmd"] = json::array({"sleep", "600"});
    auto id = Await(docker_->CreateContainer(kContainer, body));
    ASSERT_TRUE(id.ok()) << id.error().message;
    ASSERT_TRUE(Await(docker_->StartContainer(kContainer)).ok());
  }
  void TearDown() override {
    if (docker_) (void)Await(docker_->RemoveContainer(kContainer, true));
    fs::remove_all(dir_);
  }

  template <typename T>
  T Await(net::awaitable<T> call) {
    net::io_context ioc;
    std::optional<T> out;
    net::co_spawn(
        ioc, [&]() -> net::awaitable<void> { out.emplace(co_await std::move(call)); },
        [](std::exception_ptr e) {
          if (e) std::rethrow_exception(e);
        });
    ioc.run();
    return std::move(*out);
  }

  struct Agent {
    net::io_context ioc;
    SystemClock clock;
    std::unique_ptr<LeaseStore> store;
    std::vector<Message> sent;
    std::unique_ptr<LeaseRunner> runner;

    std::vector<proto::TaskReport> Reports() const {
      std::vector<proto::TaskReport> out;
      for (const auto& m : sent) {
        if (m.type == "task") out.push_back(*proto::TaskReportFromJson(m.data));
      }
      return out;
    }
    std::string Output(int64_t task_id) const {
      std::string out;
      for (const auto& m : sent) {
        if (m.type == "task_output" && m.data["task_id"] == task_id) {
          out += m.data["data"].get<std::string>();
        }
      }
      return out;
    }
    template <typename F>
    bool RunUntil(F done, std::chrono::milliseconds limit) {
      auto end = std::chrono::steady_clock::now() + limit;
      while (!done()) {
        if (std::chrono::steady_clock::now() > end) return false;
        ioc.run_for(milliseconds(20));
        if (ioc.stopped()) ioc.restart();
      }
      return true;
    }
  };

  // An agent on the state directory (the previous one must be gone).
  std::unique_ptr<Agent> StartAgent() {
    auto a = std::make_unique<Agent>();
    auto store = LeaseStore::Open(dir_.string());
    EXPECT_TRUE(store.ok()) << store.error().message;
    if (!store.ok()) return nullptr;
    a->store = std::make_unique<LeaseStore>(std::move(store).value());
    auto loaded = a->store->Load();
    EXPECT_TRUE(loaded.ok());
    Agent* raw = a.get();
    a->runner =
        std::make_unique<LeaseRunner>(a->ioc, a->clock, docker_.get(), a->store.get(),
                                      ProcessTree(), [raw](std::string_view type, json data) {
                                        raw->sent.push_back({std::string(type), std::move(data)});
                                        return true;
                                      });
    a->runner->Restore(loaded.ok() ? loaded->leases : std::vector<LeaseRecord>{});
    a->runner->OnConnected();
    a->runner->Start();
    return a;
  }

  json Start(int64_t task_id, const std::string& command, int64_t deadline_in_ms,
             int64_t grace_ms) {
    proto::TaskStart t;
    t.task_id = task_id;
    t.container = kContainer;
    t.command = command;
    t.gpus = {0, 2};
    t.deadline_ms = std::chrono::duration_cast<milliseconds>(
                        std::chrono::system_clock::now().time_since_epoch())
                        .count() +
                    deadline_in_ms;
    t.kill_grace_ms = grace_ms;
    return proto::ToJson(t);
  }

  static constexpr const char* kContainer = "gpuhub-lease-live";
  std::unique_ptr<runtime::DockerClient> docker_;
  fs::path dir_;
};

TEST_F(LiveLeaseTest, ALeaseExpiresAtItsDeadlineAndItsProcessesGo) {
  auto agent = StartAgent();
  ASSERT_TRUE(agent);
  agent->runner->OnMessage("task_start", Start(1,
                                               "echo hi $CUDA_VISIBLE_DEVICES "
                                               "$NVIDIA_VISIBLE_DEVICES; sleep 30",
                                               2000, 1000));
  ASSERT_TRUE(agent->RunUntil(
      [&] {
        auto r = agent->runner->Find(1);
        return r && r->released;
      },
      std::chrono::seconds(15)));
  auto reports = agent->Reports();
  ASSERT_GE(reports.size(), 3u);
  EXPECT_EQ(reports[0].status, "running");
  EXPECT_GT(reports[0].start_ms, 0);
  EXPECT_EQ(reports[1].status, "expired");
  EXPECT_FALSE(reports[1].released);
  EXPECT_EQ(reports.back().status, "expired");
  EXPECT_TRUE(reports.back().released);
  EXPECT_EQ(reports.back().exit_code, 143);  // sh ended by SIGTERM
  EXPECT_GE(reports.back().end_ms - reports.back().start_ms, 1500);
  EXPECT_EQ(agent->Output(1), "hi 0,2 0,2\n");
  auto rec = agent->runner->Find(1);
  ASSERT_GT(rec->process.pid, 0);
  EXPECT_FALSE(ProcessTree().Alive(rec->process));
  EXPECT_TRUE(CollectFrom(ProcessTree().Snapshot(), rec->process).members.empty());
  agent->runner->Stop();
}

TEST_F(LiveLeaseTest, CommandsThatEndByThemselves) {
  auto agent = StartAgent();
  ASSERT_TRUE(agent);
  agent->runner->OnMessage("task_start", Start(1, "echo ok", 60'000, 1000));
  agent->runner->OnMessage("task_start", Start(2, "echo no >&2; exit 3", 60'000, 1000));
  agent->runner->OnMessage("task_start", Start(3, "sleep 0.5; echo late", 60'000, 1000));
  ASSERT_TRUE(agent->RunUntil(
      [&] {
        for (int64_t id : {1, 2, 3}) {
          auto r = agent->runner->Find(id);
          if (!r || !r->released) return false;
        }
        return true;
      },
      std::chrono::seconds(15)));
  EXPECT_EQ(agent->runner->Find(1)->status, "completed");
  EXPECT_EQ(agent->runner->Find(1)->exit_code, 0);
  EXPECT_EQ(agent->runner->Find(2)->status, "failed");
  EXPECT_EQ(agent->runner->Find(2)->exit_code, 3);
  EXPECT_EQ(agent->runner->Find(2)->message, "");
  EXPECT_EQ(agent->runner->Find(3)->status, "completed");
  EXPECT_EQ(agent->Output(1), "ok\n");
  EXPECT_EQ(agent->Output(2), "no\n");
  EXPECT_EQ(agent->Output(3), "late\n");
  agent->runner->Stop();
}

TEST_F(LiveLeaseTest, AStubbornCommandIsKilledAfterTheGracePeriod) {
  auto agent = StartAgent();
  ASSERT_TRUE(agent);
  agent->runner->OnMessage("task_start",
                           Start(1, "trap '' TERM; sleep 30 & sleep 30; echo never", 1000, 1500));
  ASSERT_TRUE(agent->RunUntil(
      [&] {
        auto r = agent->runner->Find(1);
        return r && r->released;
      },
      std::chrono::seconds(15)));
  auto reports = agent->Reports();
  ASSERT_GE(reports.size(), 3u);
  const auto& expired = reports[1];
  const auto& released = reports.back();
  EXPECT_EQ(expired.status, "expired");
  EXPECT_EQ(released.status, "expired");
  EXPECT_TRUE(released.released);
  EXPECT_EQ(released.exit_code, 137);  // SIGKILL
  EXPECT_EQ(agent->Output(1), "");
  auto rec = agent->runner->Find(1);
  EXPECT_TRUE(CollectFrom(ProcessTree().Snapshot(), rec->process).members.empty());
  agent->runner->Stop();
}

TEST_F(LiveLeaseTest, AChattyCommandIsBatched) {
  auto agent = StartAgent();
  ASSERT_TRUE(agent);
  agent->runner->OnMessage(
      "task_start",
      Start(1, "i=0; while [ $i -lt 30000 ]; do echo \"line $i\"; i=$((i+1)); done", 60'000, 1000));
  ASSERT_TRUE(agent->RunUntil(
      [&] {
        auto r = agent->runner->Find(1);
        return r && r->released;
      },
      std::chrono::seconds(30)));
  EXPECT_EQ(agent->runner->Find(1)->status, "completed");
  std::vector<const Message*> batches;
  for (const auto& m : agent->sent) {
    if (m.type == "task_output") batches.push_back(&m);
  }
  ASSERT_GE(batches.size(), 2u);
  for (size_t i = 0; i < batches.size(); ++i) {
    EXPECT_LE(batches[i]->data["data"].get<std::string>().size(), OutputBatcher::kMaxBytes + 64);
    if (i > 0 && i + 1 < batches.size()) {  // the last batch goes at once
      EXPECT_GE(batches[i]->at - batches[i - 1]->at, milliseconds(90)) << i;
    }
  }
  std::string out = agent->Output(1);
  const std::string tail = "line 29999\n";
  ASSERT_GE(out.size(), tail.size());
  EXPECT_EQ(out.substr(out.size() - tail.size()), tail);
  if (out.find("bytes of output dropped") == std::string::npos) {
    EXPECT_EQ(out.substr(0, 7), "line 0\n");
  }
  agent->runner->Stop();
}

TEST_F(LiveLeaseTest, MissingContainerFails) {
  auto agent = StartAgent();
  ASSERT_TRUE(agent);
  json start = Start(1, "echo hi", 60'000, 1000);
  start["container"] = "gpuhub-no-such-container";
  agent->runner->OnMessage("task_start", start);
  ASSERT_TRUE(agent->RunUntil([&] { return !agent->Reports().empty(); }, std::chrono::seconds(10)));
  auto r = agent->Reports()[0];
  EXPECT_EQ(r.status, "failed");
  EXPECT_TRUE(r.released);
  EXPECT_EQ(r.exit_code, std::nullopt);
  EXPECT_NE(r.message.find("gpuhub-no-such-container"), std::string::npos) << r.message;
  agent->runner->Stop();
}

TEST_F(LiveLeaseTest, ARestartedAgentResumesTheLease) {
  auto first = StartAgent();
  ASSERT_TRUE(first);
  first->runner->OnMessage("task_start", Start(1, "echo hi; sleep 30", 3000, 1000));
  ASSERT_TRUE(first->RunUntil(
      [&] { return !first->Reports().empty() && first->Reports()[0].status == "running"; },
      std::chrono::seconds(10)));
  const ProcessId process = first->runner->Find(1)->process;
  ASSERT_GT(process.pid, 0);
  // The agent goes away without a word (its output connection is cut).
  first->ioc.stop();
  first.reset();
  std::this_thread::sleep_for(milliseconds(300));
  ASSERT_TRUE(ProcessTree().Alive(process)) << "the exec did not survive its client";

  auto second = StartAgent();
  ASSERT_TRUE(second);
  auto tasks = proto::TasksReportFromJson(second->sent.at(0).data);
  ASSERT_TRUE(tasks.ok());
  ASSERT_EQ(tasks->size(), 1u);
  EXPECT_EQ((*tasks)[0].status, "running");
  ASSERT_TRUE(second->RunUntil(
      [&] {
        auto r = second->runner->Find(1);
        return r && r->released;
      },
      std::chrono::seconds(15)));
  auto r = second->runner->Find(1);
  EXPECT_EQ(r->status, "expired");
  EXPECT_EQ(r->exit_code, 143);
  EXPECT_FALSE(ProcessTree().Alive(process));
  second->runner->Stop();
}

}  // namespace
}  // namespace gpuhub::agent::leases
