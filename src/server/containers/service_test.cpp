#include "server/containers/service.hpp"

#include <gtest/gtest.h>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <deque>
#include <filesystem>

namespace gpuhub::containers {
namespace {

namespace net = boost::asio;
using Kind = proto::ContainerOp::Kind;

// Answers each call with the next scripted result (or "ok, running").
class FakeAgents final : public AgentCaller {
 public:
  bool Connected(const std::string& machine_id) const override {
    return online.contains(machine_id);
  }
  net::awaitable<Result<proto::ContainerResult>> Call(const std::string& machine_id,
                                                      proto::ContainerOp op,
                                                      std::chrono::milliseconds) override {
    calls.push_back(op);
    if (!online.contains(machine_id)) {
      co_return Error{ErrorCode::kUnavailable, "Machine " + machine_id + " is offline"};
    }
    if (!script.empty()) {
      auto r = std::move(script.front());
      script.pop_front();
      co_return r;
    }
    co_return Running(op);
  }
  static proto::ContainerResult Running(const proto::ContainerOp& op) {
    proto::ContainerResult r{.request_id = op.request_id, .ok = true};
    r.container = proto::ContainerState{
        .id = op.id, .runtime_id = "rt-" + std::to_string(op.id), .status = "running"};
    for (size_t i = 0; i < op.ports.size(); ++i) {
      r.container->ports.push_back({op.ports[i], 40000 + static_cast<int>(i)});
    }
    return r;
  }
  std::set<std::string> online = {"node-01"};
  std::deque<Result<proto::ContainerResult>> script;
  std::vector<proto::ContainerOp> calls;
};

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/gpuhub-containers-XXXXXX";
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
      principals_[account] = {.user_id = created->id, .account = account, .role = u.role};
    }
    for (const char* m : {"node-01", "node-02"}) {
      auto s = store_->CreateMachine({.id = m, .token_hash = std::string("h") + m});
      ASSERT_TRUE(s.ok()) << s.error().message;
    }
    service_ =
        std::make_unique<ContainerService>(*store_, agents_, clock_, std::chrono::seconds(5));
    auto image = service_->AddImage({"Busybox", "localhost/gpuhub-test:latest", "test"});
    ASSERT_TRUE(image.ok()) << image.error().message;
    image_id_ = image->id;
  }
  void TearDown() override {
    service_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  template <typename T>
  T Run(net::awaitable<T> a) {
    net::io_context ioc;
    std::optional<T> out;
    net::co_spawn(
        ioc, [&]() -> net::awaitable<void> { out.emplace(co_await std::move(a)); }, net::detached);
    ioc.run();
    return std::move(*out);
  }
  Result<store::Container> Create(const std::string& who, CreateRequest r) {
    return Run(service_->Create(principals_.at(who), std::move(r)));
  }
  Result<store::Container> Act(const std::string& who, int64_t id, Kind kind) {
    return Run(service_->Act(principals_.at(who), id, kind));
  }
  CreateRequest Dev(std::string machine = "node-01") {
    return {.machine_id = std::move(machine),
            .image_id = image_id_,
            .ports = {22, 8888},
            .name = "dev"};
  }

  std::filesystem::path dir_;
  ManualClock clock_;
  FakeAgents agents_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<ContainerService> service_;
  std::map<std::string, accounts::Principal> principals_;
  int64_t image_id_ = 0;
};

TEST_F(ServiceTest, CreateAsksTheAgentAndStoresWhatItReports) {
  auto c = Create("alice", Dev());
  ASSERT_TRUE(c.ok()) << c.error().message;
  EXPECT_EQ(c->status, "running");
  EXPECT_EQ(c->runtime_id, "rt-" + std::to_string(c->id));
  EXPECT_EQ(c->ports, (std::vector<store::PortMapping>{{22, 40000}, {8888, 40001}}));
  ASSERT_EQ(agents_.calls.size(), 1u);
  EXPECT_EQ(agents_.calls[0].op, Kind::kCreate);
  EXPECT_EQ(agents_.calls[0].account, "alice");
  EXPECT_EQ(agents_.calls[0].image, "localhost/gpuhub-test:latest");
  EXPECT_EQ(agents_.calls[0].ports, (std::vector<int>{22, 8888}));
  EXPECT_EQ(*store_->GetContainer(c->id), *c);
}

TEST_F(ServiceTest, CreateChecksInputBeforeTheAgent) {
  auto bad_name = Dev();
  bad_name.name = "Dev!";
  EXPECT_EQ(Create("alice", bad_name).error().code, ErrorCode::kInvalidArgument);
  auto bad_port = Dev();
  bad_port.ports = {22, 22};
  EXPECT_EQ(Create("alice", bad_port).error().message, "port: duplicate port 22");
  auto no_image = Dev();
  no_image.image_id = 999;
  EXPECT_EQ(Create("alice", no_image).error().message, "Image not found");
  EXPECT_EQ(Create("alice", Dev("node-99")).error().message, "Machine not found");
  EXPECT_TRUE(agents_.calls.empty());
  EXPECT_TRUE(store_->ListContainers(std::nullopt, std::nullopt)->empty());
}

TEST_F(ServiceTest, NamesAreUniquePerUserAndMachine) {
  ASSERT_TRUE(Create("alice", Dev()).ok());
  auto again = Create("alice", Dev());
  EXPECT_EQ(again.error().code, ErrorCode::kConflict);
  EXPECT_TRUE(Create("bob", Dev()).ok());
  agents_.online.insert("node-02");
  EXPECT_TRUE(Create("alice", Dev("node-02")).ok());
}

TEST_F(ServiceTest, GeneratesANameWhenNoneIsGiven) {
  auto r = Dev();
  r.name.reset();
  auto c = Create("alice", r);
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(ValidateContainerName(c->name).ok()) << c->name;
}

TEST_F(ServiceTest, OfflineMachineLeavesNoRecord) {
  agents_.online.clear();
  auto c = Create("alice", Dev());
  EXPECT_EQ(c.error().code, ErrorCode::kUnavailable);
  EXPECT_EQ(c.error().message, "Machine node-01 is offline");
  EXPECT_TRUE(store_->ListContainers(std::nullopt, std::nullopt)->empty());
}

TEST_F(ServiceTest, AgentRefusalKeepsItsCodeAndLeavesNoRecord) {
  agents_.script.push_back(
      proto::ContainerResult{.ok = false, .code = "conflict", .message = "name in use"});
  auto c = Create("alice", Dev());
  EXPECT_EQ(c.error().code, ErrorCode::kConflict);
  EXPECT_EQ(c.error().message, "name in use");
  EXPECT_TRUE(store_->ListContainers(std::nullopt, std::nullopt)->empty());
}

TEST_F(ServiceTest, UnansweredCreateStaysCreatingUntilAReportSettlesIt) {
  agents_.script.push_back(Error{ErrorCode::kUnavailable, "Machine node-01 did not answer"});
  EXPECT_FALSE(Create("alice", Dev()).ok());
  auto list = *store_->ListContainers(std::nullopt, std::nullopt);
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0].status, "creating");
  service_->Reconcile("node-01", {{list[0].id, "rt", "running", {{22, 40100}}}});
  auto now = *store_->GetContainer(list[0].id);
  EXPECT_EQ(now.status, "running");
  EXPECT_EQ(now.ports, (std::vector<store::PortMapping>{{22, 40100}}));
}

TEST_F(ServiceTest, OnlyOwnerOrAdminMayAct) {
  auto c = Create("alice", Dev());
  ASSERT_TRUE(c.ok());
  auto denied = Act("bob", c->id, Kind::kStop);
  EXPECT_EQ(denied.error().code, ErrorCode::kPermissionDenied);
  EXPECT_EQ(denied.error().message, "Permission denied");
  EXPECT_EQ(agents_.calls.size(), 1u);  // only the create
  agents_.script.push_back(proto::ContainerResult{
      .ok = true, .container = proto::ContainerState{c->id, "rt", "exited", {}}});
  auto stopped = Act("root", c->id, Kind::kStop);
  ASSERT_TRUE(stopped.ok());
  EXPECT_EQ(stopped->status, "exited");
  EXPECT_EQ(stopped->ports.size(), 2u) << "a stopped container keeps its requested ports";
  EXPECT_EQ(Act("alice", 999, Kind::kStart).error().message, "Container not found");
}

TEST_F(ServiceTest, DeleteRemovesTheRecordAfterTheAgent) {
  auto c = Create("alice", Dev());
  ASSERT_TRUE(c.ok());
  auto d = Act("alice", c->id, Kind::kDelete);
  ASSERT_TRUE(d.ok());
  EXPECT_EQ(d->status, "deleted");
  EXPECT_EQ(agents_.calls.back().op, Kind::kDelete);
  EXPECT_EQ(store_->GetContainer(c->id).error().code, ErrorCode::kNotFound);
}

TEST_F(ServiceTest, ReconcileMarksMissingContainersGoneAndDeleteNeedsNoAgent) {
  auto c = Create("alice", Dev());
  ASSERT_TRUE(c.ok());
  service_->Reconcile("node-02", {});  // another machine's report changes nothing
  EXPECT_EQ(store_->GetContainer(c->id)->status, "running");
  service_->Reconcile("node-01", {});
  EXPECT_EQ(store_->GetContainer(c->id)->status, "gone");
  // It comes back if the runtime shows it again.
  service_->Reconcile("node-01", {{c->id, "rt", "exited", {}}});
  EXPECT_EQ(store_->GetContainer(c->id)->status, "exited");
  service_->Reconcile("node-01", {});
  agents_.online.clear();
  size_t calls = agents_.calls.size();
  ASSERT_TRUE(Act("alice", c->id, Kind::kDelete).ok());
  EXPECT_EQ(agents_.calls.size(), calls);
}

TEST_F(ServiceTest, ActingOnAContainerTheRuntimeLostMarksItGone) {
  auto c = Create("alice", Dev());
  ASSERT_TRUE(c.ok());
  agents_.script.push_back(
      proto::ContainerResult{.ok = false, .code = "not_found", .message = "no such container"});
  auto r = Act("alice", c->id, Kind::kStart);
  EXPECT_EQ(r.error().code, ErrorCode::kConflict);
  EXPECT_EQ(store_->GetContainer(c->id)->status, "gone");
}

TEST_F(ServiceTest, ListShowsOwnOrAllForAdmins) {
  ASSERT_TRUE(Create("alice", Dev()).ok());
  ASSERT_TRUE(Create("bob", Dev()).ok());
  EXPECT_EQ(service_->List(principals_["alice"], false)->size(), 1u);
  EXPECT_EQ(service_->List(principals_["alice"], true).error().code, ErrorCode::kPermissionDenied);
  EXPECT_EQ(service_->List(principals_["root"], true)->size(), 2u);
  EXPECT_EQ(service_->List(principals_["root"], false)->size(), 0u);
}

TEST_F(ServiceTest, ImageCatalogChecksInputAndUse) {
  EXPECT_EQ(service_->AddImage({"", "x", ""}).error().message, "name must be 1-100 characters");
  EXPECT_EQ(service_->AddImage({"n", "has space", ""}).error().code, ErrorCode::kInvalidArgument);
  EXPECT_EQ(service_->AddImage({"n", "x", std::string(1001, 'd')}).error().code,
            ErrorCode::kInvalidArgument);
  ASSERT_TRUE(Create("alice", Dev()).ok());
  EXPECT_EQ(service_->RemoveImage(image_id_).error().code, ErrorCode::kConflict);
  auto other = service_->AddImage({"Other", "x:1", ""});
  ASSERT_TRUE(other.ok());
  EXPECT_TRUE(service_->RemoveImage(other->id).ok());
  EXPECT_EQ(service_->RemoveImage(other->id).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(service_->ListImages()->size(), 1u);
}

TEST(ContainerRules, NamesAndPorts) {
  EXPECT_TRUE(ValidateContainerName("dev").ok());
  EXPECT_TRUE(ValidateContainerName("0-jupyter").ok());
  EXPECT_FALSE(ValidateContainerName("").ok());
  EXPECT_FALSE(ValidateContainerName("-x").ok());
  EXPECT_FALSE(ValidateContainerName("Dev").ok());
  EXPECT_FALSE(ValidateContainerName("a_b").ok());
  EXPECT_FALSE(ValidateContainerName(std::string(33, 'a')).ok());
  EXPECT_TRUE(ValidatePorts({}).ok());
  EXPECT_TRUE(ValidatePorts({1, 65535}).ok());
  EXPECT_FALSE(ValidatePorts({0}).ok());
  EXPECT_FALSE(ValidatePorts({65536}).ok());
  EXPECT_FALSE(ValidatePorts(std::vector<int>(17, 1)).ok());
}

}  // namespace
}  // namespace gpuhub::containers
