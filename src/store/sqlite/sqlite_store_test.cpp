#include "store/sqlite/sqlite_store.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <filesystem>
#include <iostream>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "common/time_util.hpp"
#include "store/sqlite/migrations.hpp"
#include "store/store.hpp"

namespace gpuhub::store {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

// A fresh directory under /tmp, removed with everything in it at the end.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = "/tmp/gpuhub-store-test-XXXXXX";
    if (mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

// A second, raw connection for looking behind the store's back.
class RawDb {
 public:
  explicit RawDb(const std::string& path) { sqlite3_open(path.c_str(), &db_); }
  ~RawDb() { sqlite3_close_v2(db_); }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;
  sqlite3* get() const { return db_; }

  // The first column of the first row of `sql`, as text; "" if none.
  std::string Scalar(const char* sql) const {
    sqlite3_stmt* stmt = nullptr;
    std::string out;
    if (sqlite3_prepare_v2(db_, sql, -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
      const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
      if (text != nullptr) out = text;
    }
    sqlite3_finalize(stmt);
    return out;
  }

 private:
  sqlite3* db_ = nullptr;
};

User MakeUser(std::string account) {
  User u;
  u.account = std::move(account);
  u.password_hash = "$argon2id$v=19$m=65536,t=2,p=1$c2FsdA$aGFzaA";
  u.nickname = "Nick " + u.account;
  u.role = "user";
  u.created_at = FromUnixSeconds(1795482123);
  return u;
}

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty()) << "mkdtemp failed";
    db_path_ = (dir_.path() / "gpuhub.db").string();
    Reopen();
  }

  void Reopen() {
    store_.reset();
    Result<std::unique_ptr<Store>> opened = OpenSqliteStore(db_path_);
    ASSERT_TRUE(opened.ok()) << opened.error().message;
    store_ = std::move(opened).value();
  }

  TempDir dir_;
  std::string db_path_;
  std::unique_ptr<Store> store_;
};

TEST_F(SqliteStoreTest, CreateListUpdateDeleteRoundtrip) {
  User plain = MakeUser("alice");
  User full = MakeUser("bob");
  full.email = "bob@example.com";
  full.phone = "+86 138 0000 0000";
  full.role = "admin";
  full.photo = Photo{Photo::Kind::kUpload, "bob-1.png", "image/png", "v1"};

  Result<User> a = store_->CreateUser(plain);
  ASSERT_TRUE(a.ok()) << a.error().message;
  Result<User> b = store_->CreateUser(full);
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_GT(a->id, 0);
  EXPECT_GT(b->id, a->id);
  plain.id = a->id;
  full.id = b->id;
  EXPECT_EQ(*a, plain);
  EXPECT_EQ(*b, full);

  Result<std::vector<User>> users = store_->ListUsers();
  ASSERT_TRUE(users.ok()) << users.error().message;
  EXPECT_THAT(*users, ElementsAre(plain, full));

  // Set every optional field on one, clear them on the other; account and
  // created_at stay as they were.
  User plain2 = plain;
  plain2.password_hash = "new-hash";
  plain2.nickname = "Alice";
  plain2.email = "alice@example.com";
  plain2.phone = "123";
  plain2.role = "admin";
  plain2.photo = Photo{Photo::Kind::kPreset, "cat", "image/svg+xml", "p2"};
  User full2 = full;
  full2.email.reset();
  full2.phone.reset();
  full2.photo.reset();
  full2.role = "user";
  ASSERT_TRUE(store_->UpdateUser(plain2).ok());
  User ignored = full2;
  ignored.account = "mallory";
  ignored.created_at = FromUnixSeconds(1);
  ASSERT_TRUE(store_->UpdateUser(ignored).ok());

  users = store_->ListUsers();
  ASSERT_TRUE(users.ok());
  EXPECT_THAT(*users, ElementsAre(plain2, full2));

  ASSERT_TRUE(store_->DeleteUser(plain.id).ok());
  users = store_->ListUsers();
  ASSERT_TRUE(users.ok());
  EXPECT_THAT(*users, ElementsAre(full2));
}

TEST_F(SqliteStoreTest, EmptyStringsAreNotNull) {
  User u = MakeUser("empty");
  u.email = "";
  u.phone = "";
  u.photo = Photo{Photo::Kind::kPreset, "", "", ""};
  Result<User> created = store_->CreateUser(u);
  ASSERT_TRUE(created.ok());
  Result<std::vector<User>> users = store_->ListUsers();
  ASSERT_TRUE(users.ok());
  ASSERT_EQ(users->size(), 1u);
  EXPECT_EQ(users->front(), *created);
}

TEST_F(SqliteStoreTest, CreatedAtKeepsWholeSeconds) {
  User u = MakeUser("frac");
  u.created_at = FromUnixSeconds(1000) + std::chrono::milliseconds(900);
  Result<User> created = store_->CreateUser(u);
  ASSERT_TRUE(created.ok());
  EXPECT_EQ(created->created_at, FromUnixSeconds(1000));
  Result<std::vector<User>> users = store_->ListUsers();
  ASSERT_TRUE(users.ok());
  EXPECT_THAT(*users, ElementsAre(*created));
}

TEST_F(SqliteStoreTest, DuplicateAccountIsConflict) {
  ASSERT_TRUE(store_->CreateUser(MakeUser("alice")).ok());
  Result<User> dup = store_->CreateUser(MakeUser("alice"));
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().code, ErrorCode::kConflict);
  EXPECT_EQ(dup.error().message, "Account already exists");
  Result<std::vector<User>> users = store_->ListUsers();
  ASSERT_TRUE(users.ok());
  EXPECT_EQ(users->size(), 1u);
}

TEST_F(SqliteStoreTest, InvalidRoleIsInternal) {
  User u = MakeUser("x");
  u.role = "root";
  Result<User> r = store_->CreateUser(u);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kInternal);
  EXPECT_NE(r.error().message.find("CHECK"), std::string::npos) << r.error().message;
}

TEST_F(SqliteStoreTest, IdsAreNotReusedAfterDelete) {
  Result<User> a = store_->CreateUser(MakeUser("a"));
  Result<User> b = store_->CreateUser(MakeUser("b"));
  ASSERT_TRUE(a.ok() && b.ok());
  ASSERT_TRUE(store_->DeleteUser(b->id).ok());
  ASSERT_TRUE(store_->DeleteUser(a->id).ok());
  Reopen();  // the high-water mark is durable too
  Result<User> c = store_->CreateUser(MakeUser("b"));
  ASSERT_TRUE(c.ok());
  EXPECT_GT(c->id, b->id);
}

TEST_F(SqliteStoreTest, MissingUserIsNotFound) {
  User ghost = MakeUser("ghost");
  ghost.id = 42;
  Status u = store_->UpdateUser(ghost);
  ASSERT_FALSE(u.ok());
  EXPECT_EQ(u.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(u.error().message, "User not found");
  Status d = store_->DeleteUser(42);
  ASSERT_FALSE(d.ok());
  EXPECT_EQ(d.error().code, ErrorCode::kNotFound);
  EXPECT_EQ(d.error().message, "User not found");

  Result<User> a = store_->CreateUser(MakeUser("a"));
  ASSERT_TRUE(a.ok());
  ASSERT_TRUE(store_->DeleteUser(a->id).ok());
  Status again = store_->DeleteUser(a->id);
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error().code, ErrorCode::kNotFound);
}

TEST_F(SqliteStoreTest, UpdateWithUnchangedValuesSucceeds) {
  Result<User> a = store_->CreateUser(MakeUser("a"));
  ASSERT_TRUE(a.ok());
  EXPECT_TRUE(store_->UpdateUser(*a).ok());
  EXPECT_TRUE(store_->UpdateUser(*a).ok());
}

TEST_F(SqliteStoreTest, RevokeListPruneTokens) {
  const TimePoint t0 = FromUnixSeconds(2000);
  using std::chrono::seconds;
  ASSERT_TRUE(store_->RevokeToken("early", t0 + seconds(10)).ok());
  ASSERT_TRUE(store_->RevokeToken("late", t0 + seconds(100)).ok());
  ASSERT_TRUE(store_->RevokeToken("late", t0 + seconds(100)).ok());  // again: not an error
  // Revoking again with an earlier expiry keeps the later one.
  ASSERT_TRUE(store_->RevokeToken("late", t0 + seconds(5)).ok());

  Result<std::vector<std::string>> live = store_->ListRevokedTokens(t0);
  ASSERT_TRUE(live.ok());
  EXPECT_THAT(*live, UnorderedElementsAre("early", "late"));

  // Expiry exactly at `now` is not "after now".
  live = store_->ListRevokedTokens(t0 + seconds(10));
  ASSERT_TRUE(live.ok());
  EXPECT_THAT(*live, ElementsAre("late"));
  live = store_->ListRevokedTokens(t0 + std::chrono::milliseconds(9500));
  ASSERT_TRUE(live.ok());
  EXPECT_THAT(*live, UnorderedElementsAre("early", "late"));

  // Prune at the cut-off removes "early" (expired at or before now) only.
  ASSERT_TRUE(store_->PruneRevokedTokens(t0 + std::chrono::milliseconds(9500)).ok());
  RawDb raw(db_path_);
  EXPECT_EQ(raw.Scalar("SELECT COUNT(*) FROM revoked_tokens"), "2");
  ASSERT_TRUE(store_->PruneRevokedTokens(t0 + seconds(10)).ok());
  EXPECT_EQ(raw.Scalar("SELECT COUNT(*) FROM revoked_tokens"), "1");
  live = store_->ListRevokedTokens(FromUnixSeconds(0));
  ASSERT_TRUE(live.ok());
  EXPECT_THAT(*live, ElementsAre("late"));

  ASSERT_TRUE(store_->PruneRevokedTokens(t0 + seconds(1000)).ok());
  live = store_->ListRevokedTokens(FromUnixSeconds(0));
  ASSERT_TRUE(live.ok());
  EXPECT_THAT(*live, IsEmpty());
}

TEST_F(SqliteStoreTest, MachinesRoundTrip) {
  Machine a{"node-02", "hash-a", FromUnixSeconds(1000), std::nullopt, ""};
  Machine b{"node-01", "hash-b", FromUnixSeconds(2000), FromUnixSeconds(2500), "10.0.0.5"};
  ASSERT_TRUE(store_->CreateMachine(a).ok());
  ASSERT_TRUE(store_->CreateMachine(b).ok());
  Machine same_id = a;
  same_id.token_hash = "hash-other";
  Status dup = store_->CreateMachine(same_id);
  ASSERT_FALSE(dup.ok());
  EXPECT_EQ(dup.error().code, ErrorCode::kConflict);
  EXPECT_EQ(dup.error().message, "Machine already exists");

  ASSERT_TRUE(store_->SetMachineToken("node-02", "hash-c").ok());
  ASSERT_TRUE(store_->SetMachineSeen("node-02", FromUnixSeconds(3000), "10.0.0.9").ok());
  a.token_hash = "hash-c";
  a.last_seen = FromUnixSeconds(3000);
  a.ip = "10.0.0.9";
  Reopen();
  Result<std::vector<Machine>> machines = store_->ListMachines();
  ASSERT_TRUE(machines.ok());
  EXPECT_THAT(*machines, ElementsAre(b, a));  // ordered by id

  EXPECT_EQ(store_->SetMachineToken("nope", "h").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(store_->SetMachineSeen("nope", FromUnixSeconds(1), "").error().code,
            ErrorCode::kNotFound);
  ASSERT_TRUE(store_->DeleteMachine("node-01").ok());
  EXPECT_EQ(store_->DeleteMachine("node-01").error().code, ErrorCode::kNotFound);
  EXPECT_EQ(store_->ListMachines()->size(), 1u);
}

TEST_F(SqliteStoreTest, ReopenKeepsDataAndDoesNotReapplyMigrations) {
  User u = MakeUser("alice");
  u.email = "a@example.com";
  u.photo = Photo{Photo::Kind::kUpload, "a.jpg", "image/jpeg", "7"};
  Result<User> created = store_->CreateUser(u);
  ASSERT_TRUE(created.ok());
  ASSERT_TRUE(store_->RevokeToken("jti-1", FromUnixSeconds(5000)).ok());

  const std::string migrations_before =
      RawDb(db_path_).Scalar("SELECT COUNT(*) || ':' || MAX(version) FROM schema_migrations");
  EXPECT_EQ(migrations_before, std::to_string(sqlite::Migrations().size()) + ":" +
                                   std::to_string(sqlite::Migrations().back().version));

  Reopen();
  Reopen();
  EXPECT_EQ(RawDb(db_path_).Scalar("SELECT COUNT(*) || ':' || MAX(version) FROM schema_migrations"),
            migrations_before);
  Result<std::vector<User>> users = store_->ListUsers();
  ASSERT_TRUE(users.ok());
  EXPECT_THAT(*users, ElementsAre(*created));
  Result<std::vector<std::string>> live = store_->ListRevokedTokens(FromUnixSeconds(0));
  ASSERT_TRUE(live.ok());
  EXPECT_THAT(*live, ElementsAre("jti-1"));
}

TEST_F(SqliteStoreTest, JournalModeIsWal) {
  // journal_mode=WAL is persistent in the file, so a fresh connection sees it.
  EXPECT_EQ(RawDb(db_path_).Scalar("PRAGMA journal_mode"), "wal");
  EXPECT_TRUE(std::filesystem::exists(db_path_ + "-wal"));
}

TEST_F(SqliteStoreTest, ConcurrentCallsFromManyThreads) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 25;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t] {
      for (int i = 0; i < kPerThread; ++i) {
        // Built with append: GCC 12 -O3 misreports "a" + to_string(...) (-Wrestrict).
        std::string name = std::to_string(t);
        name.append("-").append(std::to_string(i));
        EXPECT_TRUE(store_->CreateUser(MakeUser(name)).ok());
        EXPECT_TRUE(store_->RevokeToken(name, FromUnixSeconds(10)).ok());
        EXPECT_TRUE(store_->ListUsers().ok());
      }
    });
  }
  for (std::thread& th : threads) th.join();
  Result<std::vector<User>> users = store_->ListUsers();
  ASSERT_TRUE(users.ok());
  EXPECT_EQ(users->size(), static_cast<size_t>(kThreads * kPerThread));
}

// Matches a failed Result or Status with this code and message.
MATCHER_P2(FailsWith, code, message, "") {
  if (arg.ok()) {
    *result_listener << "which succeeded";
    return false;
  }
  *result_listener << "which failed with code " << static_cast<int>(arg.error().code) << ": "
                   << arg.error().message;
  return arg.error().code == code && arg.error().message == message;
}

// Matches a successful Result holding `expected`.
MATCHER_P(Holds, expected, "") {
  if (!arg.ok()) {
    *result_listener << "which failed: " << arg.error().message;
    return false;
  }
  return *arg == expected;
}

Machine MakeMachine(const std::string& id) {
  return Machine{id, "hash-" + id, FromUnixSeconds(1000), std::nullopt, ""};
}

Image MakeImage(const std::string& name) {
  Image image;
  image.name = name;
  image.image = "docker.io/lab/" + name + ":1";
  image.description = "The " + name + " image";
  image.created_at = FromUnixSeconds(1795482100);
  return image;
}

TEST_F(SqliteStoreTest, ImagesRoundTrip) {
  Image plain = MakeImage("torch");
  Image bare = MakeImage("bare");
  bare.description = "";
  bare.created_at = FromUnixSeconds(1000) + std::chrono::milliseconds(900);
  Result<Image> a = store_->CreateImage(plain);
  Result<Image> b = store_->CreateImage(bare);
  ASSERT_TRUE(a.ok()) << a.error().message;
  ASSERT_TRUE(b.ok()) << b.error().message;
  EXPECT_GT(a->id, 0);
  EXPECT_GT(b->id, a->id);
  plain.id = a->id;
  bare.id = b->id;
  bare.created_at = FromUnixSeconds(1000);  // as stored: whole seconds
  EXPECT_EQ(*a, plain);
  EXPECT_EQ(*b, bare);

  Reopen();
  EXPECT_THAT(store_->ListImages(), Holds(std::vector{plain, bare}));  // ordered by id

  ASSERT_TRUE(store_->DeleteImage(bare.id).ok());
  EXPECT_THAT(store_->ListImages(), Holds(std::vector{plain}));
  EXPECT_THAT(store_->DeleteImage(bare.id), FailsWith(ErrorCode::kNotFound, "Image not found"));
  EXPECT_THAT(store_->DeleteImage(999), FailsWith(ErrorCode::kNotFound, "Image not found"));

  // The deleted newest id is not reused, even after a reopen.
  Reopen();
  Result<Image> next = store_->CreateImage(MakeImage("bare"));
  ASSERT_TRUE(next.ok());
  EXPECT_GT(next->id, bare.id);
}

Container MakeContainer(const User& user, const std::string& machine_id, const std::string& name,
                        const Image& image) {
  Container c;
  c.user_id = user.id;
  c.account = user.account;
  c.machine_id = machine_id;
  c.name = name;
  c.image_id = image.id;
  c.image = image.image;
  c.status = "creating";
  c.ports = {{22, 0}};
  c.created_at = FromUnixSeconds(1795482200);
  return c;
}

// Two users, two machines and an image to make containers from.
class ContainerStoreTest : public SqliteStoreTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(SqliteStoreTest::SetUp());
    Result<User> alice = store_->CreateUser(MakeUser("alice"));
    Result<User> bob = store_->CreateUser(MakeUser("bob"));
    Result<Image> image = store_->CreateImage(MakeImage("torch"));
    ASSERT_TRUE(alice.ok() && bob.ok() && image.ok());
    alice_ = *alice;
    bob_ = *bob;
    image_ = *image;
    ASSERT_TRUE(store_->CreateMachine(MakeMachine("node-01")).ok());
    ASSERT_TRUE(store_->CreateMachine(MakeMachine("node-02")).ok());
  }

  Container MakeContainer(const User& user, const std::string& machine_id,
                          const std::string& name) const {
    return store::MakeContainer(user, machine_id, name, image_);
  }

  // Creates the container, failing the test if that fails.
  Container Create(const User& user, const std::string& machine_id, const std::string& name) {
    Result<Container> created = store_->CreateContainer(MakeContainer(user, machine_id, name));
    EXPECT_TRUE(created.ok()) << created.error().message;
    return created.ok() ? *created : Container{};
  }

  // ListContainers' answer; empty, failing the test, if it fails.
  std::vector<Container> List(std::optional<int64_t> user_id,
                              std::optional<std::string> machine_id) {
    Result<std::vector<Container>> list = store_->ListContainers(user_id, std::move(machine_id));
    EXPECT_TRUE(list.ok()) << list.error().message;
    return list.ok() ? *list : std::vector<Container>{};
  }

  User alice_;
  User bob_;
  Image image_;
};

TEST_F(ContainerStoreTest, CreateGetUpdateDeleteRoundtrip) {
  Container c = MakeContainer(alice_, "node-01", "dev");
  c.ports = {{22, 40022}, {8888, 0}, {80, 40080}};  // order is kept
  c.created_at = FromUnixSeconds(1795482200) + std::chrono::milliseconds(700);
  Result<Container> created = store_->CreateContainer(c);
  ASSERT_TRUE(created.ok()) << created.error().message;
  EXPECT_GT(created->id, 0);
  c.id = created->id;
  c.created_at = FromUnixSeconds(1795482200);  // as stored: whole seconds
  EXPECT_EQ(*created, c);
  EXPECT_THAT(store_->GetContainer(c.id), Holds(c));

  // Only status, ports and runtime_id change.
  Container update = c;
  update.status = "running";
  update.ports = {};
  update.runtime_id = "0123456789abcdef";
  Container ignored = update;
  ignored.user_id = bob_.id;
  ignored.account = "bob";
  ignored.machine_id = "node-02";
  ignored.name = "other";
  ignored.image = "other:1";
  ignored.created_at = FromUnixSeconds(1);
  ASSERT_TRUE(store_->UpdateContainer(ignored).ok());
  EXPECT_THAT(store_->GetContainer(c.id), Holds(update));
  ASSERT_TRUE(store_->UpdateContainer(update).ok());  // unchanged values: still found

  ASSERT_TRUE(store_->DeleteContainer(c.id).ok());
  EXPECT_THAT(store_->GetContainer(c.id), FailsWith(ErrorCode::kNotFound, "Container not found"));
  EXPECT_THAT(store_->UpdateContainer(update),
              FailsWith(ErrorCode::kNotFound, "Container not found"));
  EXPECT_THAT(store_->DeleteContainer(c.id),
              FailsWith(ErrorCode::kNotFound, "Container not found"));
  EXPECT_THAT(List(std::nullopt, std::nullopt), IsEmpty());
}

TEST_F(ContainerStoreTest, PortsAreStoredAsJson) {
  Container c = MakeContainer(alice_, "node-01", "dev");
  c.ports = {{22, 40022}, {8888, 0}};
  Result<Container> created = store_->CreateContainer(c);
  ASSERT_TRUE(created.ok());
  RawDb raw(db_path_);
  EXPECT_EQ(raw.Scalar("SELECT ports FROM containers"),
            R"([{"container":22,"host":40022},{"container":8888,"host":0}])");

  // Ports that are not such a list are the database's fault.
  for (const char* bad :
       {"UPDATE containers SET ports = 'not json'", "UPDATE containers SET ports = '{}'",
        R"(UPDATE containers SET ports = '[{"container":22}]')",
        R"(UPDATE containers SET ports = '[{"container":"22","host":0}]')"}) {
    ASSERT_EQ(sqlite3_exec(raw.get(), bad, nullptr, nullptr, nullptr), SQLITE_OK) << bad;
    Result<Container> got = store_->GetContainer(created->id);
    ASSERT_FALSE(got.ok()) << bad;
    EXPECT_EQ(got.error().code, ErrorCode::kInternal) << bad;
    EXPECT_FALSE(store_->ListContainers(std::nullopt, std::nullopt).ok()) << bad;
  }
}

TEST_F(ContainerStoreTest, NameIsUniquePerUserAndMachine) {
  const Container first = Create(alice_, "node-01", "dev");
  EXPECT_THAT(store_->CreateContainer(MakeContainer(alice_, "node-01", "dev")),
              FailsWith(ErrorCode::kConflict, "Container name already taken"));
  // The same name for another user, or on another machine, is fine.
  const Container bobs = Create(bob_, "node-01", "dev");
  const Container elsewhere = Create(alice_, "node-02", "dev");
  EXPECT_THAT(List(std::nullopt, std::nullopt), ElementsAre(first, bobs, elsewhere));

  // A deleted container's name is free again.
  ASSERT_TRUE(store_->DeleteContainer(first.id).ok());
  const Container again = Create(alice_, "node-01", "dev");
  EXPECT_GT(again.id, elsewhere.id);
}

TEST_F(ContainerStoreTest, MissingReferenceIsNotFound) {
  Container no_machine = MakeContainer(alice_, "node-99", "dev");
  EXPECT_THAT(store_->CreateContainer(no_machine),
              FailsWith(ErrorCode::kNotFound, "Machine not found"));
  Container no_image = MakeContainer(alice_, "node-01", "dev");
  no_image.image_id = image_.id + 100;
  EXPECT_THAT(store_->CreateContainer(no_image),
              FailsWith(ErrorCode::kNotFound, "Image not found"));
  Container no_user = MakeContainer(alice_, "node-01", "dev");
  no_user.user_id = bob_.id + 100;
  EXPECT_THAT(store_->CreateContainer(no_user), FailsWith(ErrorCode::kNotFound, "User not found"));
  // With several missing, the first of machine, image, user is named.
  Container none = no_user;
  none.machine_id = "node-99";
  none.image_id = no_image.image_id;
  EXPECT_THAT(store_->CreateContainer(none), FailsWith(ErrorCode::kNotFound, "Machine not found"));

  // Nothing was inserted, and no transaction was left open.
  EXPECT_THAT(List(std::nullopt, std::nullopt), IsEmpty());
  Create(alice_, "node-01", "dev");
  EXPECT_EQ(List(std::nullopt, std::nullopt).size(), 1u);
}

TEST_F(ContainerStoreTest, ImageInUseCannotBeDeleted) {
  const Container c = Create(alice_, "node-01", "dev");
  EXPECT_THAT(store_->DeleteImage(image_.id),
              FailsWith(ErrorCode::kConflict, "Image is used by containers"));
  EXPECT_THAT(store_->ListImages(), Holds(std::vector{image_}));
  EXPECT_THAT(store_->GetContainer(c.id), Holds(c));

  ASSERT_TRUE(store_->DeleteContainer(c.id).ok());
  EXPECT_TRUE(store_->DeleteImage(image_.id).ok());
  EXPECT_THAT(store_->ListImages(), Holds(std::vector<Image>{}));
}

TEST_F(ContainerStoreTest, IdsAreNotReusedAfterDelete) {
  const Container a = Create(alice_, "node-01", "a");
  const Container b = Create(alice_, "node-01", "b");
  EXPECT_GT(b.id, a.id);
  ASSERT_TRUE(store_->DeleteContainer(b.id).ok());
  ASSERT_TRUE(store_->DeleteContainer(a.id).ok());
  Reopen();
  EXPECT_GT(Create(alice_, "node-01", "b").id, b.id);
}

TEST_F(ContainerStoreTest, ListFiltersByUserAndMachine) {
  const Container bob2 = Create(bob_, "node-02", "x");
  const Container alice1 = Create(alice_, "node-01", "x");
  const Container bob1 = Create(bob_, "node-01", "x");
  const Container alice2 = Create(alice_, "node-02", "x");
  const Container alice1b = Create(alice_, "node-01", "y");

  EXPECT_THAT(List(std::nullopt, std::nullopt), ElementsAre(bob2, alice1, bob1, alice2, alice1b));
  EXPECT_THAT(List(alice_.id, std::nullopt), ElementsAre(alice1, alice2, alice1b));
  EXPECT_THAT(List(std::nullopt, "node-01"), ElementsAre(alice1, bob1, alice1b));
  EXPECT_THAT(List(alice_.id, "node-01"), ElementsAre(alice1, alice1b));
  EXPECT_THAT(List(bob_.id, "node-02"), ElementsAre(bob2));
  EXPECT_THAT(List(bob_.id + 100, std::nullopt), IsEmpty());
  EXPECT_THAT(List(std::nullopt, "node-99"), IsEmpty());
  EXPECT_THAT(List(std::nullopt, ""), IsEmpty());
}

TEST_F(ContainerStoreTest, DeleteMachineDeletesItsContainers) {
  const Container on1 = Create(alice_, "node-01", "x");
  const Container on2 = Create(alice_, "node-02", "x");
  const Container bob_on1 = Create(bob_, "node-01", "x");
  ASSERT_TRUE(store_->DeleteMachine("node-01").ok());
  EXPECT_THAT(List(std::nullopt, std::nullopt), ElementsAre(on2));
  EXPECT_THAT(store_->GetContainer(on1.id), FailsWith(ErrorCode::kNotFound, "Container not found"));
  EXPECT_THAT(store_->GetContainer(bob_on1.id),
              FailsWith(ErrorCode::kNotFound, "Container not found"));
  EXPECT_EQ(RawDb(db_path_).Scalar("SELECT COUNT(*) FROM containers"), "1");
}

TEST_F(ContainerStoreTest, DeleteUserDeletesTheirContainers) {
  const Container alices = Create(alice_, "node-01", "x");
  const Container bobs = Create(bob_, "node-01", "x");
  const Container alices2 = Create(alice_, "node-02", "x");
  ASSERT_TRUE(store_->DeleteUser(alice_.id).ok());
  EXPECT_THAT(List(std::nullopt, std::nullopt), ElementsAre(bobs));
  EXPECT_THAT(store_->GetContainer(alices.id),
              FailsWith(ErrorCode::kNotFound, "Container not found"));
  EXPECT_THAT(store_->GetContainer(alices2.id),
              FailsWith(ErrorCode::kNotFound, "Container not found"));
  // Creating for the deleted user now fails.
  EXPECT_THAT(store_->CreateContainer(MakeContainer(alice_, "node-01", "y")),
              FailsWith(ErrorCode::kNotFound, "User not found"));
}

TEST_F(ContainerStoreTest, ReopenKeepsEverything) {
  Container a = Create(alice_, "node-01", "dev");
  const Container b = Create(bob_, "node-02", "web");
  a.status = "running";
  a.ports = {{22, 40022}};
  a.runtime_id = "abc";
  ASSERT_TRUE(store_->UpdateContainer(a).ok());
  // Committed: another connection sees it before the store closes.
  EXPECT_EQ(RawDb(db_path_).Scalar("SELECT status FROM containers WHERE name = 'dev'"), "running");

  Reopen();
  EXPECT_THAT(List(std::nullopt, std::nullopt), ElementsAre(a, b));
  EXPECT_THAT(store_->GetContainer(a.id), Holds(a));
  EXPECT_THAT(store_->ListImages(), Holds(std::vector{image_}));
  EXPECT_THAT(store_->ListUsers(), Holds(std::vector{alice_, bob_}));
  EXPECT_THAT(store_->DeleteImage(image_.id),
              FailsWith(ErrorCode::kConflict, "Image is used by containers"));
}

TEST(Migrations, Version2DatabaseMigratesToVersion3) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string path = (dir.path() / "v2.db").string();
  {
    RawDb db(path);
    ASSERT_TRUE(sqlite::ApplyMigrations(db.get(), sqlite::Migrations().first(2)).ok());
    ASSERT_EQ(sqlite3_exec(db.get(),
                           "INSERT INTO users (account, password_hash, nickname, role, created_at) "
                           "VALUES ('alice', 'h', 'Alice', 'admin', 1000);"
                           "INSERT INTO machines (id, token_hash, created_at, last_seen, ip) "
                           "VALUES ('node-01', 'th', 2000, 2500, '10.0.0.5');",
                           nullptr, nullptr, nullptr),
              SQLITE_OK)
        << sqlite3_errmsg(db.get());
    EXPECT_EQ(db.Scalar("SELECT COUNT(*) FROM sqlite_master WHERE name = 'containers'"), "0");
  }

  Result<std::unique_ptr<Store>> opened = OpenSqliteStore(path);
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  Store& store = **opened;
  EXPECT_EQ(RawDb(path).Scalar("SELECT MAX(version) FROM schema_migrations"),
            std::to_string(sqlite::Migrations().back().version));

  Result<std::vector<User>> users = store.ListUsers();
  ASSERT_TRUE(users.ok());
  ASSERT_EQ(users->size(), 1u);
  EXPECT_EQ(users->front().account, "alice");
  EXPECT_EQ(users->front().role, "admin");
  EXPECT_EQ(users->front().created_at, FromUnixSeconds(1000));
  EXPECT_THAT(store.ListMachines(),
              Holds(std::vector{Machine{"node-01", "th", FromUnixSeconds(2000),
                                        FromUnixSeconds(2500), "10.0.0.5"}}));

  // The new tables work with the old rows.
  Result<Image> image = store.CreateImage(MakeImage("torch"));
  ASSERT_TRUE(image.ok());
  Result<Container> created =
      store.CreateContainer(MakeContainer(users->front(), "node-01", "dev", *image));
  ASSERT_TRUE(created.ok()) << created.error().message;
  EXPECT_THAT(store.GetContainer(created->id), Holds(*created));
}

// ---- Tasks -----------------------------------------------------------------

constexpr std::string_view kTaskStatuses[] = {"queued",    "running", "completed", "failed",
                                              "cancelled", "expired", "lost"};

// A fixed origin for task times, on a whole millisecond.
const TimePoint kT0 = FromUnixSeconds(1795482000);

using std::chrono::milliseconds;
using std::chrono::seconds;

// Two users, two machines, and a container of each user on each machine.
class TaskStoreTest : public ContainerStoreTest {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(ContainerStoreTest::SetUp());
    for (const User* u : {&alice_, &bob_}) {
      for (const char* m : {"node-01", "node-02"}) containers_.push_back(Create(*u, m, "dev"));
    }
  }

  // A queued task of `user` on `machine`, in their container there.
  Task MakeTask(const User& user, const std::string& machine) const {
    Task t;
    t.user_id = user.id;
    t.account = user.account;
    t.machine_id = machine;
    for (const Container& c : containers_) {
      if (c.user_id == user.id && c.machine_id == machine) t.container_id = c.id;
    }
    t.containername = "dev";
    t.command = "python train.py --epochs 3";
    t.duration = std::chrono::hours(2);
    t.gpu_count = 1;
    t.status = "queued";
    t.submit_time = kT0;
    return t;
  }

  // Creates the task, failing the test if that fails.
  Task CreateTask(const Task& t) {
    Result<Task> created = store_->CreateTask(t);
    EXPECT_TRUE(created.ok()) << created.error().message;
    return created.ok() ? *created : Task{};
  }

  // ListTasks' answer; empty, failing the test, if it fails.
  std::vector<Task> ListTasks(const TaskFilter& f) {
    Result<std::vector<Task>> list = store_->ListTasks(f);
    EXPECT_TRUE(list.ok()) << list.error().message;
    return list.ok() ? *list : std::vector<Task>{};
  }

  // Ends the task: `status`, end time `end`, GPUs released or not.
  Task End(Task t, const std::string& status, std::optional<TimePoint> end, bool released) {
    t.status = status;
    t.end_time = end;
    t.released = released;
    EXPECT_TRUE(store_->UpdateTask(t).ok());
    return t;
  }

  std::vector<Container> containers_;
};

TEST_F(TaskStoreTest, CreateGetRoundTripOfEveryField) {
  Task full = MakeTask(alice_, "node-02");
  full.command = "bash -c 'echo \"hi\" && sleep 1'\n\tünïcode";
  full.duration = milliseconds(5400123);
  full.gpu_count = 3;
  full.gpus_requested = {3, 0, 7};  // order is kept
  full.gpu_ids = {3, 0, 7};
  full.status = "completed";
  // Sub-millisecond parts are cut: times keep whole milliseconds.
  full.submit_time = kT0 + milliseconds(1) + std::chrono::microseconds(999);
  full.start_time = kT0 + milliseconds(2500) + std::chrono::nanoseconds(1);
  full.end_time = kT0 + seconds(7200) + milliseconds(999) + std::chrono::microseconds(500);
  full.exit_code = -9;
  full.released = true;
  full.id = 12345;  // ignored

  Result<Task> created = store_->CreateTask(full);
  ASSERT_TRUE(created.ok()) << created.error().message;
  EXPECT_GT(created->id, 0);
  Task expected = full;
  expected.id = created->id;
  expected.submit_time = kT0 + milliseconds(1);
  expected.start_time = kT0 + milliseconds(2500);
  expected.end_time = kT0 + seconds(7200) + milliseconds(999);
  EXPECT_EQ(*created, expected);
  EXPECT_THAT(store_->GetTask(expected.id), Holds(expected));

  // Optional fields null, lists empty.
  Task bare = MakeTask(bob_, "node-01");
  bare.command = "";
  bare.gpu_count = 0;
  const Task bare_created = CreateTask(bare);
  EXPECT_GT(bare_created.id, expected.id);
  EXPECT_FALSE(bare_created.start_time || bare_created.end_time || bare_created.exit_code);
  EXPECT_THAT(store_->GetTask(bare_created.id), Holds(bare_created));

  // As stored: ms since the epoch, JSON arrays, NULLs, 0/1.
  RawDb raw(db_path_);
  EXPECT_EQ(raw.Scalar(("SELECT submit_ms || ' ' || start_ms || ' ' || end_ms || ' ' || "
                        "duration_ms || ' ' || gpus_requested || ' ' || gpu_ids || ' ' || "
                        "exit_code || ' ' || released FROM tasks WHERE id = " +
                        std::to_string(expected.id))
                           .c_str()),
            "1795482000001 1795482002500 1795489200999 5400123 [3,0,7] [3,0,7] -9 1");
  EXPECT_EQ(raw.Scalar(("SELECT gpus_requested || gpu_ids || released || "
                        "(start_ms IS NULL) || (end_ms IS NULL) || (exit_code IS NULL) "
                        "FROM tasks WHERE id = " +
                        std::to_string(bare_created.id))
                           .c_str()),
            "[][]0111");

  // Times before 1970 round down too.
  Task old = MakeTask(bob_, "node-01");
  old.submit_time = TimePoint{} - milliseconds(1500) - std::chrono::microseconds(1);
  const Task old_created = CreateTask(old);
  EXPECT_EQ(old_created.submit_time, TimePoint{} - milliseconds(1501));
  EXPECT_THAT(store_->GetTask(old_created.id), Holds(old_created));
}

TEST_F(TaskStoreTest, UpdateReplacesOnlyTheLeaseFields) {
  Task t = CreateTask(MakeTask(alice_, "node-01"));
  Task update = t;
  update.gpu_ids = {1, 2};
  update.status = "running";
  update.start_time = kT0 + milliseconds(1234) + std::chrono::microseconds(5);
  Task ignored = update;
  ignored.user_id = bob_.id;
  ignored.account = "bob";
  ignored.machine_id = "node-02";
  ignored.container_id = 999;
  ignored.containername = "other";
  ignored.command = "rm -rf /";
  ignored.duration = milliseconds(1);
  ignored.gpu_count = 8;
  ignored.gpus_requested = {5};
  ignored.submit_time = kT0 + seconds(99);
  ASSERT_TRUE(store_->UpdateTask(ignored).ok());
  update.start_time = kT0 + milliseconds(1234);
  EXPECT_THAT(store_->GetTask(t.id), Holds(update));

  update.status = "failed";
  update.end_time = kT0 + seconds(60);
  update.exit_code = 137;
  update.released = true;
  ASSERT_TRUE(store_->UpdateTask(update).ok());
  EXPECT_THAT(store_->GetTask(t.id), Holds(update));
  ASSERT_TRUE(store_->UpdateTask(update).ok());  // unchanged values: still found

  // And back to null.
  update.gpu_ids.clear();
  update.start_time.reset();
  update.end_time.reset();
  update.exit_code.reset();
  update.released = false;
  ASSERT_TRUE(store_->UpdateTask(update).ok());
  EXPECT_THAT(store_->GetTask(t.id), Holds(update));
}

TEST_F(TaskStoreTest, MissingIsNotFound) {
  EXPECT_THAT(store_->GetTask(1), FailsWith(ErrorCode::kNotFound, "Task not found"));
  Task ghost = MakeTask(alice_, "node-01");
  ghost.id = 77;
  EXPECT_THAT(store_->UpdateTask(ghost), FailsWith(ErrorCode::kNotFound, "Task not found"));

  Task no_machine = MakeTask(alice_, "node-01");
  no_machine.machine_id = "node-99";
  EXPECT_THAT(store_->CreateTask(no_machine), FailsWith(ErrorCode::kNotFound, "Machine not found"));
  Task no_user = MakeTask(alice_, "node-01");
  no_user.user_id = bob_.id + 100;
  EXPECT_THAT(store_->CreateTask(no_user), FailsWith(ErrorCode::kNotFound, "User not found"));
  Task neither = no_user;
  neither.machine_id = "";
  EXPECT_THAT(store_->CreateTask(neither), FailsWith(ErrorCode::kNotFound, "Machine not found"));

  // Nothing was inserted, and no transaction was left open.
  EXPECT_THAT(ListTasks({}), IsEmpty());
  const Task t = CreateTask(MakeTask(alice_, "node-01"));
  EXPECT_THAT(ListTasks({}), ElementsAre(t));
  EXPECT_THAT(store_->GetTask(t.id + 1), FailsWith(ErrorCode::kNotFound, "Task not found"));
}

TEST_F(TaskStoreTest, CreateTasksStoresABatchAndRefusesOnlyTheBadOnes) {
  Task a = MakeTask(alice_, "node-01");
  Task ghost = MakeTask(alice_, "node-01");
  ghost.machine_id = "node-99";
  Task b = MakeTask(bob_, "node-02");
  b.command = "second";
  std::vector<Result<Task>> out = store_->CreateTasks({a, ghost, b});
  ASSERT_EQ(out.size(), 3u);
  ASSERT_TRUE(out[0].ok()) << out[0].error().message;
  EXPECT_THAT(out[1], FailsWith(ErrorCode::kNotFound, "Machine not found"));
  ASSERT_TRUE(out[2].ok()) << out[2].error().message;
  EXPECT_GT(out[2]->id, out[0]->id);
  EXPECT_EQ(out[2]->command, "second");
  EXPECT_TRUE(store_->CreateTasks({}).empty());
  // Durable: both are there after a reopen, and nothing else.
  Reopen();
  EXPECT_THAT(ListTasks({}), ElementsAre(*out[2], *out[0]));
}

TEST_F(TaskStoreTest, CreateTasksStoresNothingWhenTheTransactionFails) {
  {
    // A statement that ends the whole transaction, as an I/O error would.
    RawDb raw(db_path_);
    ASSERT_EQ(sqlite3_exec(raw.get(),
                           "CREATE TRIGGER boom BEFORE INSERT ON tasks WHEN NEW.command = 'boom' "
                           "BEGIN SELECT RAISE(ROLLBACK, 'boom'); END",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
  }
  Reopen();
  Task bad = MakeTask(bob_, "node-01");
  bad.command = "boom";
  std::vector<Result<Task>> out =
      store_->CreateTasks({MakeTask(alice_, "node-01"), bad, MakeTask(alice_, "node-02")});
  ASSERT_EQ(out.size(), 3u);
  for (const auto& r : out) {
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.error().code, ErrorCode::kInternal);
  }
  EXPECT_THAT(ListTasks({}), IsEmpty());
  CreateTask(MakeTask(alice_, "node-01"));  // no transaction was left open
}

TEST_F(TaskStoreTest, MalformedGpusAreInternal) {
  const Task t = CreateTask(MakeTask(alice_, "node-01"));
  RawDb raw(db_path_);
  for (const char* bad :
       {"UPDATE tasks SET gpu_ids = 'x'", "UPDATE tasks SET gpu_ids = '{}'",
        "UPDATE tasks SET gpu_ids = '[\"0\"]'", "UPDATE tasks SET gpus_requested = '[1.5]'"}) {
    ASSERT_EQ(sqlite3_exec(raw.get(), "UPDATE tasks SET gpu_ids = '[]', gpus_requested = '[]'",
                           nullptr, nullptr, nullptr),
              SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(raw.get(), bad, nullptr, nullptr, nullptr), SQLITE_OK) << bad;
    Result<Task> got = store_->GetTask(t.id);
    ASSERT_FALSE(got.ok()) << bad;
    EXPECT_EQ(got.error().code, ErrorCode::kInternal) << bad;
    EXPECT_FALSE(store_->ListTasks({}).ok()) << bad;
  }
}

TEST_F(TaskStoreTest, IdsGrowAndAreNeverReused) {
  int64_t last = 0;
  for (int i = 0; i < 5; ++i) {
    const Task t = CreateTask(MakeTask(i % 2 == 0 ? alice_ : bob_, "node-02"));
    EXPECT_GT(t.id, last);
    last = t.id;
    End(t, "completed", kT0, true);
  }
  // The newest tasks go with their machine; their ids stay taken, even
  // across a reopen.
  ASSERT_TRUE(store_->DeleteMachine("node-02").ok());
  EXPECT_THAT(ListTasks({}), IsEmpty());
  Reopen();
  EXPECT_GT(CreateTask(MakeTask(alice_, "node-01")).id, last);
}

// What ListTasks should return for `f`, from every task there is: the
// contract in store.hpp, spelled out once more.
std::vector<Task> Expected(const std::vector<Task>& all, const TaskFilter& f) {
  std::vector<Task> out;
  for (auto it = all.rbegin(); it != all.rend(); ++it) {  // newest first
    const Task& t = *it;
    const bool active = t.status == "queued" || t.status == "running";
    if (f.user_id && t.user_id != *f.user_id) continue;
    if (f.machine_id && t.machine_id != *f.machine_id) continue;
    if (f.active_or_ended_since && !active &&
        !(t.end_time && *t.end_time >= *f.active_or_ended_since)) {
      continue;
    }
    if (f.unreleased_only && !active && t.released) continue;
    out.push_back(t);
  }
  return out;
}

TEST_F(TaskStoreTest, ListEveryFilterCombinationNewestFirst) {
  // For each user and machine, in interleaved order: a task in every status,
  // ending at various times, released or not.
  std::vector<Task> all;
  int n = 0;
  for (int round = 0; round < 2; ++round) {
    for (const User* u : {&alice_, &bob_}) {
      for (const char* m : {"node-02", "node-01"}) {
        for (std::string_view status : kTaskStatuses) {
          Task t = CreateTask(MakeTask(*u, m));
          ++n;
          t.status = status;
          if (status != "queued") {
            t.start_time = kT0 + seconds(1);
            t.gpu_ids = {n % 4};
          }
          if (status != "queued" && status != "running" && !(status == "lost" && round == 0)) {
            t.end_time = kT0 + seconds(n % 7 * 10);  // some end at the same time
          }
          t.released = (status != "queued" && status != "running" && n % 3 != 0) ||
                       (status == "running" && round == 1);  // running yet released: still active
          if (t.end_time) t.exit_code = n % 3 - 1;
          ASSERT_TRUE(store_->UpdateTask(t).ok());
          all.push_back(t);
        }
      }
    }
  }
  ASSERT_EQ(all.size(), 56u);

  // A few answers spelled out, so that Expected is checked as well.
  EXPECT_EQ(ListTasks({}), std::vector(all.rbegin(), all.rend()));
  std::vector<int64_t> active_ids;
  for (const Task& t : ListTasks({.active_or_ended_since = kT0 + seconds(1000)})) {
    EXPECT_TRUE(t.status == "queued" || t.status == "running") << t.status;
    active_ids.push_back(t.id);
  }
  EXPECT_EQ(active_ids.size(), 16u);
  EXPECT_TRUE(std::is_sorted(active_ids.rbegin(), active_ids.rend()));
  EXPECT_EQ(ListTasks({.user_id = alice_.id, .machine_id = "node-01"}).size(), 14u);
  EXPECT_THAT(ListTasks({.user_id = alice_.id + 100}), IsEmpty());
  EXPECT_THAT(ListTasks({.machine_id = "node-99"}), IsEmpty());

  const std::vector<std::optional<int64_t>> users = {std::nullopt, alice_.id, bob_.id,
                                                     bob_.id + 100};
  const std::vector<std::optional<std::string>> machines = {std::nullopt, "node-01", "node-02",
                                                            "node-99", ""};
  const std::vector<std::optional<TimePoint>> sinces = {
      std::nullopt,
      kT0 - seconds(1),
      kT0,  // == the earliest end: inclusive
      kT0 + seconds(30),
      kT0 + seconds(30) - std::chrono::microseconds(1),  // sub-ms: like kT0 + 30s
      kT0 + seconds(30) + std::chrono::microseconds(1),  // sub-ms: after those that ended at 30 s
      kT0 + seconds(60),
      kT0 + seconds(61),
  };
  int checked = 0;
  for (const auto& user : users) {
    for (const auto& machine : machines) {
      for (const auto& since : sinces) {
        for (bool unreleased : {false, true}) {
          const TaskFilter f{user, machine, since, unreleased};
          EXPECT_EQ(ListTasks(f), Expected(all, f))
              << "user " << user.value_or(-1) << " machine " << machine.value_or("(any)")
              << " since " << (since ? (*since - kT0).count() : -1) << " unreleased " << unreleased;
          ++checked;
        }
      }
    }
  }
  EXPECT_EQ(checked, 4 * 5 * 8 * 2);
  // Sanity: the interesting filters are not all empty.
  EXPECT_FALSE(Expected(all, {alice_.id, "node-01", kT0 + seconds(30), true}).empty());
  EXPECT_NE(Expected(all, {std::nullopt, std::nullopt, kT0 + seconds(30), false}).size(),
            Expected(all, {std::nullopt, std::nullopt, kT0 + seconds(30) + milliseconds(1), false})
                .size());
}

// Every ListTasks query with a filter reads through an index, never the
// whole table or a whole big index: so it stays fast with a long history.
TEST_F(TaskStoreTest, ListQueriesUseIndexes) {
  RawDb raw(db_path_);
  for (int shape = 1; shape < 16; ++shape) {
    TaskFilter f;
    if (shape & 1) f.user_id = 1;
    if (shape & 2) f.machine_id = "m";
    if (shape & 4) f.active_or_ended_since = kT0;
    f.unreleased_only = (shape & 8) != 0;
    const std::string sql = "EXPLAIN QUERY PLAN " + sqlite::ListTasksSql(f);
    sqlite3_stmt* stmt = nullptr;
    ASSERT_EQ(sqlite3_prepare_v2(raw.get(), sql.c_str(), -1, &stmt, nullptr), SQLITE_OK)
        << sqlite3_errmsg(raw.get()) << "\n"
        << sql;
    std::string plan;
    bool full_scan = false;
    while (sqlite3_step(stmt) == SQLITE_ROW) {
      const std::string detail = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 3));
      plan += detail + "\n";
      // Only the small index of live tasks may be read whole.
      if (detail.starts_with("SCAN tasks") &&
          detail.find("INDEX tasks_live") == std::string::npos) {
        full_scan = true;
      }
    }
    sqlite3_finalize(stmt);
    EXPECT_FALSE(full_scan) << "shape " << shape << ":\n" << sql << "\n" << plan;
  }
}

TEST_F(TaskStoreTest, ListStaysFastWithALongHistory) {
  // 100,000 finished tasks (of three users on two machines), written behind
  // the store's back in one transaction, then a few live ones.
  RawDb raw(db_path_);
  const std::string fill =
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000) "
      "INSERT INTO tasks (user_id, account, machine_id, container_id, containername, command, "
      "duration_ms, gpu_count, gpus_requested, gpu_ids, status, submit_ms, start_ms, end_ms, "
      "exit_code, released) SELECT " +
      std::to_string(alice_.id) +
      " + i % 3, 'x', 'node-0' || (1 + i % 2), 1, 'dev', 'cmd', 1000, " +
      "1, '[]', '[0]', 'completed', i * 1000, i * 1000 + 1, i * 1000 + 2, 0, 1 FROM n";
  ASSERT_EQ(sqlite3_exec(raw.get(), fill.c_str(), nullptr, nullptr, nullptr), SQLITE_OK)
      << sqlite3_errmsg(raw.get());
  for (int i = 0; i < 10; ++i) CreateTask(MakeTask(i % 2 ? alice_ : bob_, "node-01"));
  Task ended = CreateTask(MakeTask(alice_, "node-01"));
  ended = End(ended, "completed", TimePoint(milliseconds(int64_t{100000} * 1000 + 5)), false);

  struct Case {
    const char* name;
    TaskFilter filter;
    size_t rows;
  };
  const TimePoint recent = TimePoint(milliseconds(int64_t{99990} * 1000));  // 11 history tasks
  const Case cases[] = {
      {"machine + since", {.machine_id = "node-01", .active_or_ended_since = recent}, 17},
      {"user + since", {.user_id = alice_.id, .active_or_ended_since = recent}, 10},
      {"unreleased", {.unreleased_only = true}, 11},
      {"since", {.active_or_ended_since = recent}, 22},
      {"machine + unreleased", {.machine_id = "node-02", .unreleased_only = true}, 0},
  };
  for (const Case& c : cases) {
    const auto start = std::chrono::steady_clock::now();
    constexpr int kRuns = 20;
    for (int i = 0; i < kRuns; ++i) ASSERT_EQ(ListTasks(c.filter).size(), c.rows) << c.name;
    const auto each = (std::chrono::steady_clock::now() - start) / kRuns;
    std::cout << "ListTasks(" << c.name
              << ") with 100,011 tasks: " << std::chrono::duration<double, std::micro>(each).count()
              << " us\n";
  }
}

TEST_F(TaskStoreTest, DeleteMachineIsRefusedWhileTasksAreActive) {
  const Task queued = CreateTask(MakeTask(alice_, "node-01"));
  Task running = CreateTask(MakeTask(bob_, "node-01"));
  running.status = "running";
  running.start_time = kT0 + seconds(1);
  running.gpu_ids = {0};
  ASSERT_TRUE(store_->UpdateTask(running).ok());
  const Task done =
      End(CreateTask(MakeTask(alice_, "node-01")), "completed", kT0 + seconds(5), true);
  const Task elsewhere = CreateTask(MakeTask(alice_, "node-02"));  // active, other machine
  const std::vector<Container> containers = List(std::nullopt, std::nullopt);

  auto expect_nothing_deleted = [&] {
    EXPECT_EQ(store_->ListMachines()->size(), 2u);
    EXPECT_EQ(List(std::nullopt, std::nullopt), containers);
    EXPECT_EQ(ListTasks({}).size(), 4u);
  };
  EXPECT_THAT(store_->DeleteMachine("node-01"),
              FailsWith(ErrorCode::kConflict, "Machine has active tasks"));
  expect_nothing_deleted();

  // Still refused with only the queued one, or only the running one, left.
  running = End(running, "completed", kT0 + seconds(9), false);
  EXPECT_THAT(store_->DeleteMachine("node-01"),
              FailsWith(ErrorCode::kConflict, "Machine has active tasks"));
  expect_nothing_deleted();
  Task queued2 = End(queued, "cancelled", kT0 + seconds(2), true);
  Task running2 = running;
  running2.status = "running";
  running2.end_time.reset();
  ASSERT_TRUE(store_->UpdateTask(running2).ok());
  EXPECT_THAT(store_->DeleteMachine("node-01"),
              FailsWith(ErrorCode::kConflict, "Machine has active tasks"));
  expect_nothing_deleted();

  // Every task on it has ended (one still holding its GPUs, "lost" with no
  // end time): the machine goes, with its containers and tasks.
  End(running2, "lost", std::nullopt, false);
  EXPECT_TRUE(store_->DeleteMachine("node-01").ok());
  EXPECT_THAT(store_->ListMachines(), Holds(std::vector{MakeMachine("node-02")}));
  for (const Task& t : {queued2, running2, done}) {
    EXPECT_THAT(store_->GetTask(t.id), FailsWith(ErrorCode::kNotFound, "Task not found"));
  }
  EXPECT_THAT(ListTasks({}), ElementsAre(elsewhere));
  EXPECT_EQ(List(std::nullopt, "node-01").size(), 0u);
  EXPECT_EQ(List(std::nullopt, "node-02").size(), 2u);
  EXPECT_EQ(RawDb(db_path_).Scalar("SELECT COUNT(*) FROM tasks"), "1");

  EXPECT_THAT(store_->DeleteMachine("node-01"),
              FailsWith(ErrorCode::kNotFound, "Machine not found"));
  EXPECT_THAT(store_->CreateTask(MakeTask(alice_, "node-01")),
              FailsWith(ErrorCode::kNotFound, "Machine not found"));
  // No transaction was left open.
  EXPECT_TRUE(store_->CreateMachine(MakeMachine("node-03")).ok());
  EXPECT_TRUE(store_->DeleteMachine("node-03").ok());
}

TEST_F(TaskStoreTest, DeleteUserKeepsTheirTasks) {
  const Task a1 = CreateTask(MakeTask(alice_, "node-01"));
  const Task b1 = CreateTask(MakeTask(bob_, "node-01"));
  const Task a2 = End(CreateTask(MakeTask(alice_, "node-02")), "completed", kT0, true);
  ASSERT_TRUE(store_->DeleteUser(alice_.id).ok());
  // Under their old id and account, which are never reused.
  EXPECT_THAT(store_->GetTask(a1.id), Holds(a1));
  EXPECT_THAT(store_->GetTask(a2.id), Holds(a2));
  EXPECT_THAT(ListTasks({}), ElementsAre(a2, b1, a1));
  EXPECT_THAT(ListTasks({.user_id = alice_.id}), ElementsAre(a2, a1));
  EXPECT_THAT(store_->CreateTask(MakeTask(alice_, "node-01")),
              FailsWith(ErrorCode::kNotFound, "User not found"));
  // Their containers are gone though.
  EXPECT_THAT(List(alice_.id, std::nullopt), IsEmpty());
  Result<User> again = store_->CreateUser(MakeUser("alice"));
  ASSERT_TRUE(again.ok());
  EXPECT_NE(again->id, alice_.id);
  EXPECT_THAT(ListTasks({.user_id = again->id}), IsEmpty());
}

TEST_F(TaskStoreTest, ReopenKeepsEverything) {
  Task a = CreateTask(MakeTask(alice_, "node-01"));
  const Task b = CreateTask(MakeTask(bob_, "node-02"));
  a.status = "failed";
  a.gpu_ids = {0, 1};
  a.start_time = kT0 + milliseconds(10);
  a.end_time = kT0 + milliseconds(20);
  a.exit_code = 2;
  ASSERT_TRUE(store_->UpdateTask(a).ok());
  // Committed: another connection sees it before the store closes.
  EXPECT_EQ(RawDb(db_path_).Scalar("SELECT status FROM tasks WHERE exit_code = 2"), "failed");

  Reopen();
  EXPECT_THAT(ListTasks({}), ElementsAre(b, a));
  EXPECT_THAT(store_->GetTask(a.id), Holds(a));
  EXPECT_THAT(ListTasks({.unreleased_only = true}), ElementsAre(b, a));
  EXPECT_THAT(store_->DeleteMachine("node-02"),
              FailsWith(ErrorCode::kConflict, "Machine has active tasks"));
  EXPECT_GT(CreateTask(MakeTask(bob_, "node-02")).id, b.id);
}

TEST_F(TaskStoreTest, ConcurrentCreatesGetDistinctGrowingIds) {
  constexpr int kThreads = 4;
  constexpr int kPerThread = 20;
  std::vector<std::vector<int64_t>> ids(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([this, t, &ids] {
      for (int i = 0; i < kPerThread; ++i) {
        Result<Task> created = store_->CreateTask(MakeTask(t % 2 ? alice_ : bob_, "node-01"));
        ASSERT_TRUE(created.ok()) << created.error().message;
        ids[t].push_back(created->id);
        EXPECT_TRUE(store_->ListTasks({.machine_id = "node-01"}).ok());
      }
    });
  }
  for (std::thread& th : threads) th.join();
  std::vector<int64_t> all;
  for (const std::vector<int64_t>& mine : ids) {
    EXPECT_TRUE(std::is_sorted(mine.begin(), mine.end()));
    all.insert(all.end(), mine.begin(), mine.end());
  }
  std::sort(all.begin(), all.end());
  EXPECT_EQ(std::adjacent_find(all.begin(), all.end()), all.end());
  EXPECT_EQ(ListTasks({}).size(), static_cast<size_t>(kThreads * kPerThread));
}

// What a durable submission costs: one CreateTask, committed with
// synchronous=FULL (an fsync of the WAL), measured on this machine's disk.
TEST_F(TaskStoreTest, CreateTaskCost) {
  constexpr int kCount = 400;
  std::vector<double> us;
  us.reserve(kCount);
  Task t = MakeTask(alice_, "node-01");
  t.gpus_requested = {0, 1};
  for (int i = 0; i < kCount; ++i) {
    const auto start = std::chrono::steady_clock::now();
    ASSERT_TRUE(store_->CreateTask(t).ok());
    us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
                     .count());
  }
  double sum = 0;
  for (double u : us) sum += u;
  std::sort(us.begin(), us.end());
  std::cout << "CreateTask x" << kCount << ": mean " << sum / kCount << " us, median "
            << us[kCount / 2] << " us, p99 " << us[kCount * 99 / 100] << " us, max " << us.back()
            << " us\n";
  RecordProperty("create_task_mean_us", static_cast<int>(sum / kCount));
}

TEST(Migrations, Version3DatabaseMigratesToVersion4) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string path = (dir.path() / "v3.db").string();
  {
    RawDb db(path);
    ASSERT_TRUE(sqlite::ApplyMigrations(db.get(), sqlite::Migrations().first(3)).ok());
    ASSERT_EQ(
        sqlite3_exec(db.get(),
                     "INSERT INTO users (account, password_hash, nickname, role, created_at) "
                     "VALUES ('alice', 'h', 'Alice', 'admin', 1000);"
                     "INSERT INTO machines (id, token_hash, created_at, last_seen, ip) "
                     "VALUES ('node-01', 'th', 2000, 2500, '10.0.0.5');"
                     "INSERT INTO images (name, image, description, created_at) "
                     "VALUES ('Torch', 'lab/torch:1', 'd', 3000);"
                     "INSERT INTO containers (user_id, account, machine_id, name, image_id, image, "
                     "status, ports, runtime_id, created_at) VALUES (1, 'alice', 'node-01', "
                     "'dev', 1, 'lab/torch:1', 'running', '[{\"container\":22,\"host\":40022}]', "
                     "'abc', 4000);",
                     nullptr, nullptr, nullptr),
        SQLITE_OK)
        << sqlite3_errmsg(db.get());
    EXPECT_EQ(db.Scalar("SELECT COUNT(*) FROM sqlite_master WHERE name = 'tasks'"), "0");
  }

  Result<std::unique_ptr<Store>> opened = OpenSqliteStore(path);
  ASSERT_TRUE(opened.ok()) << opened.error().message;
  Store& store = **opened;
  EXPECT_EQ(RawDb(path).Scalar("SELECT MAX(version) FROM schema_migrations"), "4");

  Result<std::vector<User>> users = store.ListUsers();
  ASSERT_TRUE(users.ok());
  ASSERT_EQ(users->size(), 1u);
  EXPECT_EQ(users->front().account, "alice");
  EXPECT_EQ(users->front().created_at, FromUnixSeconds(1000));
  EXPECT_THAT(store.ListMachines(),
              Holds(std::vector{Machine{"node-01", "th", FromUnixSeconds(2000),
                                        FromUnixSeconds(2500), "10.0.0.5"}}));
  EXPECT_THAT(store.ListImages(),
              Holds(std::vector{Image{1, "Torch", "lab/torch:1", "d", FromUnixSeconds(3000)}}));
  Container c;
  c.id = 1;
  c.user_id = 1;
  c.account = "alice";
  c.machine_id = "node-01";
  c.name = "dev";
  c.image_id = 1;
  c.image = "lab/torch:1";
  c.status = "running";
  c.ports = {{22, 40022}};
  c.runtime_id = "abc";
  c.created_at = FromUnixSeconds(4000);
  EXPECT_THAT(store.GetContainer(1), Holds(c));

  // The new table works with the old rows, and the machine's delete with it.
  Task t;
  t.user_id = 1;
  t.account = "alice";
  t.machine_id = "node-01";
  t.container_id = 1;
  t.containername = "dev";
  t.command = "nvidia-smi";
  t.duration = std::chrono::hours(1);
  t.gpu_count = 1;
  t.status = "running";
  t.submit_time = kT0;
  Result<Task> created = store.CreateTask(t);
  ASSERT_TRUE(created.ok()) << created.error().message;
  EXPECT_THAT(store.GetTask(created->id), Holds(*created));
  EXPECT_THAT(store.DeleteMachine("node-01"),
              FailsWith(ErrorCode::kConflict, "Machine has active tasks"));
}

TEST(OpenSqliteStore, MissingDirectoryIsInternal) {
  Result<std::unique_ptr<Store>> r = OpenSqliteStore("/nonexistent-gpuhub-dir/x/gpuhub.db");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().code, ErrorCode::kInternal);
  EXPECT_FALSE(r.error().message.empty());
}

TEST(Migrations, VersionsStrictlyIncreaseFromOne) {
  std::span<const sqlite::Migration> all = sqlite::Migrations();
  ASSERT_FALSE(all.empty());
  EXPECT_EQ(all.front().version, 1);
  for (size_t i = 1; i < all.size(); ++i) EXPECT_GT(all[i].version, all[i - 1].version);
}

TEST(Migrations, FailingMigrationRollsBackAndLaterOpenResumes) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  const std::string path = (dir.path() / "m.db").string();
  RawDb db(path);
  const std::array good = {
      sqlite::Migration{1, "CREATE TABLE a (x INTEGER);"},
  };
  const std::array bad = {
      sqlite::Migration{1, "CREATE TABLE a (x INTEGER);"},
      sqlite::Migration{2, "CREATE TABLE b (y INTEGER); THIS IS NOT SQL;"},
  };
  const std::array fixed = {
      sqlite::Migration{1, "CREATE TABLE a (x INTEGER);"},
      sqlite::Migration{2, "CREATE TABLE b (y INTEGER);"},
  };
  ASSERT_TRUE(sqlite::ApplyMigrations(db.get(), good).ok());
  Status s = sqlite::ApplyMigrations(db.get(), bad);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, ErrorCode::kInternal);
  EXPECT_NE(s.error().message.find("schema migration 2"), std::string::npos) << s.error().message;
  // Neither table b nor the row for version 2 survived.
  EXPECT_EQ(db.Scalar("SELECT COUNT(*) FROM sqlite_master WHERE name = 'b'"), "0");
  EXPECT_EQ(db.Scalar("SELECT MAX(version) FROM schema_migrations"), "1");

  ASSERT_TRUE(sqlite::ApplyMigrations(db.get(), fixed).ok());
  ASSERT_TRUE(sqlite::ApplyMigrations(db.get(), fixed).ok());
  EXPECT_EQ(db.Scalar("SELECT COUNT(*) FROM schema_migrations"), "2");
  EXPECT_EQ(db.Scalar("SELECT COUNT(*) FROM sqlite_master WHERE name = 'b'"), "1");

  // A database from a newer gpuhub is refused.
  Status newer = sqlite::ApplyMigrations(db.get(), good);
  ASSERT_FALSE(newer.ok());
  EXPECT_EQ(newer.error().code, ErrorCode::kInternal);
}

TEST(Migrations, OutOfOrderListIsRefused) {
  TempDir dir;
  ASSERT_FALSE(dir.path().empty());
  RawDb db((dir.path() / "m.db").string());
  const std::array list = {
      sqlite::Migration{2, "CREATE TABLE a (x INTEGER);"},
      sqlite::Migration{1, "CREATE TABLE b (x INTEGER);"},
  };
  EXPECT_FALSE(sqlite::ApplyMigrations(db.get(), list).ok());
}

}  // namespace
}  // namespace gpuhub::store
