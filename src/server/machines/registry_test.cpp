#include "server/machines/registry.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/time_util.hpp"

namespace gpuhub::machines {
namespace {

using std::chrono::seconds;

class RegistryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/gpuhub-registry-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    Reopen();
  }
  void TearDown() override {
    registry_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Reopen() {
    registry_.reset();
    store_.reset();
    store_ = std::move(store::OpenSqliteStore((dir_ / "db").string())).value();
    registry_ = std::move(MachineRegistry::Open(*store_, clock_, seconds(5))).value();
    registry_->SetListener([this](const std::string& id, bool online) {
      events_.push_back(id + (online ? ":on" : ":off"));
    });
  }
  nlohmann::json Info() { return nlohmann::json::parse(*registry_->InfoJson()); }
  static proto::Inventory Inv(int64_t mem_used) {
    proto::Inventory inv;
    inv.hostname = "host";
    inv.gpus.push_back({0, "GPU-0", "Test GPU", 1000, mem_used, 5, 40, {}});
    inv.cpu = {"cpu", 8, 1.5};
    inv.memory = {100, 50};
    inv.disk = {10, 5};
    return inv;
  }

  std::filesystem::path dir_;
  ManualClock clock_;
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<MachineRegistry> registry_;
  std::vector<std::string> events_;
};

TEST_F(RegistryTest, TokensAreSecretHashedAndRotated) {
  auto token = registry_->Add("node-01");
  ASSERT_TRUE(token.ok());
  EXPECT_EQ(registry_->MachineForToken(*token), "node-01");
  EXPECT_EQ(registry_->MachineForToken("gpuhub-agent-wrong"), std::nullopt);
  EXPECT_NE(registry_->List()[0].token_hash, *token);
  EXPECT_EQ(registry_->List()[0].token_hash, HashAgentToken(*token));
  EXPECT_EQ(registry_->Add("node-01").error().code, ErrorCode::kConflict);
  EXPECT_EQ(registry_->Add("bad id").error().code, ErrorCode::kInvalidArgument);

  auto rotated = registry_->RotateToken("node-01");
  ASSERT_TRUE(rotated.ok());
  EXPECT_EQ(registry_->MachineForToken(*token), std::nullopt);
  Reopen();
  EXPECT_EQ(registry_->MachineForToken(*rotated), "node-01");
  EXPECT_EQ(registry_->RotateToken("nope").error().code, ErrorCode::kNotFound);
}

TEST_F(RegistryTest, NeverConnectedMachineIsListedOffline) {
  ASSERT_TRUE(registry_->Add("b").ok());
  ASSERT_TRUE(registry_->Add("a").ok());
  auto info = Info();
  ASSERT_EQ(info.size(), 2u);
  EXPECT_EQ(info[0]["id"], "a");  // sorted by id
  EXPECT_EQ(info[0]["online"], false);
  EXPECT_TRUE(info[0]["gpu"].empty());
  EXPECT_TRUE(info[0]["last_seen"].is_null());
  EXPECT_TRUE(info[0]["ip"].is_null());
}

TEST_F(RegistryTest, ReportedIpIsUsedOnlyWhenItIsAnAddress) {
  ASSERT_TRUE(registry_->Add("n").ok());
  auto gen = registry_->Connect("n", "10.0.0.1", [] {});
  proto::Inventory inv = Inv(1);
  inv.ip = "192.168.7.7";
  ASSERT_TRUE(registry_->Report("n", *gen, inv).ok());
  EXPECT_EQ(Info()[0]["ip"], "192.168.7.7");
  inv.ip = "not an ip <script>";
  ASSERT_TRUE(registry_->Report("n", *gen, inv).ok());
  EXPECT_EQ(Info()[0]["ip"], "10.0.0.1");
}

TEST_F(RegistryTest, HeartbeatsReuseTheCachedDocumentForUpToASecond) {
  ASSERT_TRUE(registry_->Add("n").ok());
  auto gen = registry_->Connect("n", "10.0.0.1", [] {});
  ASSERT_TRUE(registry_->Report("n", *gen, Inv(1)).ok());
  auto first = registry_->InfoJson();
  clock_.Advance(std::chrono::milliseconds(2500));
  ASSERT_TRUE(registry_->Heartbeat("n", *gen, nlohmann::json::object()).ok());
  auto second = registry_->InfoJson();  // last_seen moved and the cache is old: rebuilt
  EXPECT_NE(first, second);
  EXPECT_NE(nlohmann::json::parse(*first)[0]["last_seen"],
            nlohmann::json::parse(*second)[0]["last_seen"]);
  clock_.Advance(std::chrono::milliseconds(500));
  ASSERT_TRUE(registry_->Heartbeat("n", *gen, nlohmann::json::object()).ok());
  EXPECT_EQ(registry_->InfoJson(), second);  // within the lag: same document
  ASSERT_TRUE(registry_->Heartbeat("n", *gen, proto::Diff(Inv(1), Inv(2))).ok());
  EXPECT_EQ(registry_->InfoJson(), second);  // measurements too may lag a second
  clock_.Advance(std::chrono::milliseconds(500));
  EXPECT_EQ(nlohmann::json::parse(*registry_->InfoJson())[0]["gpu"][0]["memory_used"], 2);
  registry_->Disconnect("n", *gen);  // online changes show at once
  EXPECT_EQ(nlohmann::json::parse(*registry_->InfoJson())[0]["online"], false);
}

TEST_F(RegistryTest, InfoDocumentComesWithItsGzipCopyBuiltOnce) {
  ASSERT_TRUE(registry_->Add("n").ok());
  auto a = registry_->Info();
  ASSERT_NE(a.json, nullptr);
  ASSERT_NE(a.gzip, nullptr);
  ASSERT_GE(a.gzip->size(), 18u);
  EXPECT_EQ(static_cast<unsigned char>((*a.gzip)[0]), 0x1f);  // gzip magic (inflated in
  EXPECT_EQ(static_cast<unsigned char>((*a.gzip)[1]), 0x8b);  // http's gzip_test)
  EXPECT_EQ(registry_->InfoJson(), a.json);
  auto b = registry_->Info();  // nothing changed: the same buffers, shared
  EXPECT_EQ(b.json, a.json);
  EXPECT_EQ(b.gzip, a.gzip);
  ASSERT_TRUE(registry_->Add("m").ok());
  auto c = registry_->Info();  // rebuilt together
  EXPECT_NE(c.json, a.json);
  EXPECT_NE(c.gzip, a.gzip);
  EXPECT_EQ(nlohmann::json::parse(*c.json).size(), 2u);
}

// The document is written without a json tree; it must be byte for byte what
// nlohmann::json wrote for the tree of the contract (as it was built before).
TEST_F(RegistryTest, InfoDocumentIsWhatTheJsonTreeDumps) {
  ASSERT_TRUE(registry_->Add("a-never").ok());
  ASSERT_TRUE(registry_->Add("b-busy").ok());
  ASSERT_TRUE(registry_->Add("c-odd").ok());
  auto gb = registry_->Connect("b-busy", "10.0.0.2", [] {});
  ASSERT_TRUE(registry_->Report("b-busy", *gb, Inv(3)).ok());
  registry_->SetGpuHolders("b-busy", {{0, {7, "alice"}}});
  auto gc = registry_->Connect("c-odd", "10.0.0.3", [] {});
  proto::Inventory odd = Inv(4);
  odd.hostname = "h\xc3\xb6st \"q\" \x01 \xff";  // UTF-8, quotes, a control byte, bad UTF-8
  odd.ip = "192.168.1.9";
  odd.gpus.push_back({1, "GPU-1", "Other \xe2\x82\xac", 2000, 7, 0, 30, {42, 43}});
  ASSERT_TRUE(registry_->Report("c-odd", *gc, odd).ok());
  registry_->Disconnect("c-odd", *gc);  // offline, last_seen kept

  auto machine = [&](const std::string& id, const std::string& ip, bool online,
                     std::optional<TimePoint> seen, const proto::Inventory* inv,
                     std::map<int, std::pair<int64_t, std::string>> holders) {
    nlohmann::json m = {
        {"id", id},
        {"ip", ip.empty() ? nlohmann::json(nullptr) : nlohmann::json(ip)},
        {"online", online},
        {"last_seen", seen ? nlohmann::json(FormatIso8601(*seen)) : nlohmann::json(nullptr)},
        {"gpu", nlohmann::json::array()},
        {"cpu", nullptr},
        {"memory", nullptr},
        {"disk", nullptr}};
    if (inv) {
      nlohmann::json j = proto::ToJson(*inv);
      for (auto& g : j["gpu"]) {
        g.erase("processes");
        auto h = holders.find(g["index"].get<int>());
        g["task_id"] =
            h == holders.end() ? nlohmann::json(nullptr) : nlohmann::json(h->second.first);
        g["account"] =
            h == holders.end() ? nlohmann::json(nullptr) : nlohmann::json(h->second.second);
      }
      for (const char* k : {"hostname", "gpu", "cpu", "memory", "disk"}) m[k] = j[k];
    }
    return m;
  };
  proto::Inventory b = Inv(3);
  nlohmann::json expected = nlohmann::json::array();
  expected.push_back(machine("a-never", "", false, std::nullopt, nullptr, {}));
  expected.push_back(machine("b-busy", "10.0.0.2", true, clock_.Now(), &b, {{0, {7, "alice"}}}));
  expected.push_back(machine("c-odd", "192.168.1.9", false, clock_.Now(), &odd, {}));
  EXPECT_EQ(*registry_->InfoJson(),
            expected.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
  EXPECT_EQ(*registry_->Info().json, *registry_->InfoJson());
}

// The change listener hears of every change machines/info would show, and
// MachineJson is that machine's element of the document.
TEST_F(RegistryTest, ChangeListenerHearsOfEveryChangeAndHeartbeatsAtMostOncePerInterval) {
  std::vector<std::string> changes;
  std::vector<std::string> seen_json;
  registry_->SetChangeListener([&](const std::string& id) {
    changes.push_back(id);
    seen_json.push_back(registry_->MachineJson(id).value());  // no lock held: no deadlock
  });
  ASSERT_TRUE(registry_->Add("n").ok());
  EXPECT_FALSE(registry_->MachineJson("nope").has_value());
  auto gen = registry_->Connect("n", "10.0.0.1", [] {});
  EXPECT_EQ(changes.size(), 1u);  // online
  ASSERT_TRUE(registry_->Report("n", *gen, Inv(1)).ok());
  EXPECT_EQ(changes.size(), 2u);
  EXPECT_EQ(nlohmann::json::parse(seen_json.back()), Info()[0]);

  // Heartbeats: without changes never; with changes once per interval.
  ASSERT_TRUE(registry_->Heartbeat("n", *gen, nlohmann::json::object()).ok());
  ASSERT_TRUE(registry_->Heartbeat("n", *gen, proto::Diff(Inv(1), Inv(2))).ok());
  EXPECT_EQ(changes.size(), 2u);  // within the interval of the report
  clock_.Advance(MachineRegistry::kChangeInterval);
  ASSERT_TRUE(registry_->Heartbeat("n", *gen, proto::Diff(Inv(2), Inv(3))).ok());
  EXPECT_EQ(changes.size(), 3u);
  EXPECT_EQ(nlohmann::json::parse(seen_json.back())["gpu"][0]["memory_used"], 3);
  ASSERT_TRUE(registry_->Heartbeat("n", *gen, proto::Diff(Inv(3), Inv(4))).ok());
  EXPECT_EQ(changes.size(), 3u);

  // Holders: at once, and only when they change.
  registry_->SetGpuHolders("n", {{0, {9, "bob"}}});
  EXPECT_EQ(changes.size(), 4u);
  EXPECT_EQ(nlohmann::json::parse(seen_json.back())["gpu"][0]["account"], "bob");
  registry_->SetGpuHolders("n", {{0, {9, "bob"}}});
  EXPECT_EQ(changes.size(), 4u);

  registry_->Disconnect("n", *gen);
  EXPECT_EQ(changes.size(), 5u);
  EXPECT_EQ(nlohmann::json::parse(seen_json.back())["online"], false);
  EXPECT_EQ(changes, std::vector<std::string>(5, "n"));
}

TEST_F(RegistryTest, ConcurrentReadersAndAgents) {
  for (int i = 0; i < 20; ++i) ASSERT_TRUE(registry_->Add("m" + std::to_string(i)).ok());
  std::vector<uint64_t> gens;
  for (int i = 0; i < 20; ++i) {
    auto id = "m" + std::to_string(i);
    gens.push_back(*registry_->Connect(id, "10.0.0.1", [] {}));
    ASSERT_TRUE(registry_->Report(id, gens.back(), Inv(1)).ok());
  }
  std::atomic<bool> stop{false};
  std::atomic<int> bad{0};
  std::vector<std::thread> readers;
  for (int t = 0; t < 4; ++t) {
    readers.emplace_back([&] {
      while (!stop) {
        auto doc = registry_->Info();
        auto parsed = nlohmann::json::parse(*doc.json, nullptr, false);
        if (!parsed.is_array() || parsed.size() < 20 || !doc.gzip || doc.gzip->empty()) ++bad;
      }
    });
  }
  for (int round = 0; round < 200; ++round) {
    clock_.Advance(std::chrono::milliseconds(300));
    for (int i = 0; i < 20; ++i) {
      auto id = "m" + std::to_string(i);
      ASSERT_TRUE(
          registry_
              ->Heartbeat(id, gens[static_cast<size_t>(i)], proto::Diff(Inv(round), Inv(round + 1)))
              .ok());
    }
    if (round % 50 == 0) {
      ASSERT_TRUE(registry_->Add("x" + std::to_string(round)).ok());
    }
  }
  stop = true;
  for (auto& r : readers) r.join();
  EXPECT_EQ(bad, 0);
  clock_.Advance(std::chrono::seconds(2));
  EXPECT_EQ(Info()[0]["gpu"][0]["memory_used"], 200);
  EXPECT_EQ(Info().size(), 24u);
}

TEST_F(RegistryTest, RemovingAnOnlineMachineAnnouncesItOffline) {
  ASSERT_TRUE(registry_->Add("n").ok());
  ASSERT_TRUE(registry_->Connect("n", "10.0.0.1", [] {}).ok());
  ASSERT_TRUE(registry_->Remove("n").ok());
  EXPECT_EQ(events_, (std::vector<std::string>{"n:on", "n:off"}));
}

TEST_F(RegistryTest, OnlineUntilThreeHeartbeatsAreMissed) {
  ASSERT_TRUE(registry_->Add("n").ok());
  int kicks = 0;
  auto gen = registry_->Connect("n", "10.1.1.1", [&] { ++kicks; });
  ASSERT_TRUE(gen.ok());
  ASSERT_TRUE(registry_->Report("n", *gen, Inv(10)).ok());
  auto info = Info();
  EXPECT_EQ(info[0]["online"], true);
  EXPECT_EQ(info[0]["ip"], "10.1.1.1");
  EXPECT_EQ(info[0]["gpu"][0]["memory_used"], 10);
  EXPECT_TRUE(info[0]["gpu"][0]["task_id"].is_null());

  clock_.Advance(seconds(14));
  registry_->Sweep();
  EXPECT_EQ(Info()[0]["online"], true);
  ASSERT_TRUE(registry_->Heartbeat("n", *gen, proto::Diff(Inv(10), Inv(20))).ok());
  EXPECT_EQ(Info()[0]["gpu"][0]["memory_used"], 20);
  clock_.Advance(seconds(15));
  registry_->Sweep();
  EXPECT_EQ(Info()[0]["online"], true);
  clock_.Advance(seconds(1));
  registry_->Sweep();
  EXPECT_EQ(Info()[0]["online"], false);
  EXPECT_EQ(kicks, 1);
  EXPECT_EQ(events_, (std::vector<std::string>{"n:on", "n:off"}));
  // The stale connection can no longer report.
  EXPECT_EQ(registry_->Heartbeat("n", *gen, nlohmann::json::object()).error().code,
            ErrorCode::kNotFound);
}

TEST_F(RegistryTest, SecondConnectionReplacesTheFirst) {
  ASSERT_TRUE(registry_->Add("n").ok());
  int first_kicked = 0;
  auto first = registry_->Connect("n", "1.1.1.1", [&] { ++first_kicked; });
  auto second = registry_->Connect("n", "2.2.2.2", [] {});
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first_kicked, 1);
  registry_->Disconnect("n", *first);  // the old one ending changes nothing
  EXPECT_EQ(Info()[0]["online"], true);
  registry_->Disconnect("n", *second);
  EXPECT_EQ(Info()[0]["online"], false);
  EXPECT_EQ(events_, (std::vector<std::string>{"n:on", "n:off"}));
}

TEST_F(RegistryTest, RemoveClosesTheConnectionAndLastSeenIsKept) {
  ASSERT_TRUE(registry_->Add("gone").ok());
  ASSERT_TRUE(registry_->Add("kept").ok());
  int kicked = 0;
  auto gen = registry_->Connect("gone", "1.1.1.1", [&] { ++kicked; });
  ASSERT_TRUE(registry_->Remove("gone").ok());
  EXPECT_EQ(kicked, 1);
  EXPECT_EQ(registry_->Report("gone", *gen, Inv(1)).error().code, ErrorCode::kNotFound);
  EXPECT_EQ(registry_->Remove("gone").error().code, ErrorCode::kNotFound);

  auto kept = registry_->Connect("kept", "3.3.3.3", [] {});
  registry_->Disconnect("kept", *kept);
  Reopen();
  auto info = Info();
  ASSERT_EQ(info.size(), 1u);
  EXPECT_EQ(info[0]["ip"], "3.3.3.3");
  EXPECT_FALSE(info[0]["last_seen"].is_null());
}

TEST_F(RegistryTest, MalformedHeartbeatIsRefusedWithoutChange) {
  ASSERT_TRUE(registry_->Add("n").ok());
  auto gen = registry_->Connect("n", "1.1.1.1", [] {});
  EXPECT_EQ(registry_->Heartbeat("n", *gen, {{"cpu", 5}}).error().code,
            ErrorCode::kInvalidArgument);  // no inventory yet
  ASSERT_TRUE(registry_->Report("n", *gen, Inv(10)).ok());
  EXPECT_EQ(registry_->Heartbeat("n", *gen, {{"gpu", "nope"}}).error().code,
            ErrorCode::kInvalidArgument);
  EXPECT_EQ(Info()[0]["gpu"][0]["memory_used"], 10);
}

}  // namespace
}  // namespace gpuhub::machines
