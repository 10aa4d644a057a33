#include "agent/leases/process_tree.hpp"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <thread>
#include <utility>

namespace gpuhub::agent::leases {
namespace {

namespace fs = std::filesystem;

// A /proc/<pid>/stat line with the fields the tree reads.
std::string StatLine(int64_t pid, const std::string& comm, char state, int64_t ppid, int64_t pgid,
                     uint64_t start) {
  return std::to_string(pid) + " (" + comm + ") " + state + " " + std::to_string(ppid) + " " +
         std::to_string(pgid) + " " + std::to_string(pgid) +
         " 0 -1 4194560 100 0 0 0 5 3 0 0 20 0 1 0 " + std::to_string(start) +
         " 1234567 100 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
}

TEST(ParsePidStat, ReadsTheFields) {
  auto s = ParsePidStat(StatLine(4242, "python3", 'S', 17, 4200, 987654));
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(s->pid, 4242);
  EXPECT_EQ(s->ppid, 17);
  EXPECT_EQ(s->pgid, 4200);
  EXPECT_EQ(s->state, 'S');
  EXPECT_EQ(s->start_time, 987654u);
}

TEST(ParsePidStat, CommWithSpacesAndParentheses) {
  auto s = ParsePidStat(StatLine(7, "a b) c (d", 'R', 1, 7, 55));
  ASSERT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ(s->pid, 7);
  EXPECT_EQ(s->ppid, 1);
  EXPECT_EQ(s->start_time, 55u);
}

TEST(ParsePidStat, RefusesGarbage) {
  EXPECT_FALSE(ParsePidStat("").ok());
  EXPECT_FALSE(ParsePidStat("hello").ok());
  EXPECT_FALSE(ParsePidStat("12 (x) S 1 2 3").ok());  // too few fields
  EXPECT_FALSE(ParsePidStat("x (y) S 1 2 3 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 9").ok());
  EXPECT_FALSE(ParsePidStat("12 (y) S 1 2 3 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 nine").ok());
  EXPECT_TRUE(ParsePidStat("12 (y) S 1 2 3 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 9").ok());
}

// --- A fake /proc ---------------------------------------------------------
// Fake PIDs lie above Linux's largest pid_max, so no signal can reach a real process.
constexpr int64_t kBase = 5'000'000;

class FakeProc : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("gpuhub-fakeproc-" + std::to_string(::getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  void Add(int64_t pid, char state, int64_t ppid, int64_t pgid, uint64_t start) {
    fs::create_directories(root_ / std::to_string(pid));
    std::ofstream(root_ / std::to_string(pid) / "stat")
        << StatLine(pid, "p" + std::to_string(pid), state, ppid, pgid, start);
  }
  void Remove(int64_t pid) { fs::remove_all(root_ / std::to_string(pid)); }

  // A lease: root R (kBase+100, own group) under conmon; a child in R's group; a grandchild
  // leading its own group; an orphan of R's group re-parented to init; a zombie; an orphan of
  // the grandchild's group; and unrelated processes.
  void AddLeaseTree() {
    Add(1, 'S', 0, 1, 1);
    Add(kBase + 50, 'S', 1, kBase + 50, 500);              // conmon
    Add(kBase + 100, 'S', kBase + 50, kBase + 100, 1000);  // the exec (root)
    Add(kBase + 101, 'S', kBase + 100, kBase + 100, 1001);
    Add(kBase + 102, 'R', kBase + 101, kBase + 102, 1002);  // setsid'd grandchild
    Add(kBase + 103, 'S', 1, kBase + 100, 1003);            // orphan of the root's group
    Add(kBase + 104, 'Z', kBase + 100, kBase + 100, 1004);  // zombie
    Add(kBase + 105, 'S', 1, kBase + 102, 1005);            // orphan of the grandchild's group
    Add(kBase + 200, 'S', 1, kBase + 200, 2000);            // unrelated
    Add(kBase + 201, 'S', kBase + 200, kBase + 200, 2001);  // unrelated
  }

  fs::path root_;
};

std::vector<int64_t> Pids(const std::vector<ProcessId>& ids) {
  std::vector<int64_t> out;
  for (const auto& id : ids) out.push_back(id.pid);
  return out;
}

TEST_F(FakeProc, SnapshotSkipsZombiesAndJunk) {
  AddLeaseTree();
  fs::create_directories(root_ / "self");
  fs::create_directories(root_ / "abc");
  fs::create_directories(root_ / std::to_string(kBase + 300));
  std::ofstream(root_ / std::to_string(kBase + 300) / "stat") << "garbage";
  fs::create_directories(root_ / std::to_string(kBase + 301));  // no stat: it just ended
  ProcessTree tree(root_.string());
  auto snap = tree.Snapshot();
  std::vector<int64_t> pids;
  for (const auto& p : snap) pids.push_back(p.pid);
  EXPECT_EQ(pids, (std::vector<int64_t>{1, kBase + 50, kBase + 100, kBase + 101, kBase + 102,
                                        kBase + 103, kBase + 105, kBase + 200, kBase + 201}));
  EXPECT_FALSE(tree.Read(kBase + 104));  // zombie
  EXPECT_FALSE(tree.Read(kBase + 999));
  EXPECT_TRUE(tree.Alive({kBase + 100, 1000}));
  EXPECT_FALSE(tree.Alive({kBase + 100, 999}));           // the PID was reused
  EXPECT_FALSE(tree.InForeignPidNamespace(kBase + 100));  // cannot tell: no ns links
}

TEST_F(FakeProc, CollectFindsDescendantsGroupsAndOrphans) {
  AddLeaseTree();
  ProcessTree tree(root_.string());
  auto p = CollectFrom(tree.Snapshot(), {kBase + 100, 1000});
  EXPECT_EQ(Pids(p.members), (std::vector<int64_t>{kBase + 100, kBase + 101, kBase + 102,
                                                   kBase + 103, kBase + 105}));
  EXPECT_EQ(p.groups, (std::vector<ProcessId>{{kBase + 100, 1000}, {kBase + 102, 1002}}));
}

TEST_F(FakeProc, CollectAfterTheRootEnded) {
  AddLeaseTree();
  ProcessTree tree(root_.string());
  auto first = CollectFrom(tree.Snapshot(), {kBase + 100, 1000});
  Remove(kBase + 100);
  Remove(kBase + 101);
  Remove(kBase + 102);
  // Only the orphans are left, found through their groups.
  auto later = Collect(tree.Snapshot(), first);
  EXPECT_EQ(Pids(later.members), (std::vector<int64_t>{kBase + 103, kBase + 105}));
  EXPECT_EQ(later.groups, first.groups);
  Remove(kBase + 105);
  auto last = Collect(tree.Snapshot(), later);
  EXPECT_EQ(Pids(last.members), (std::vector<int64_t>{kBase + 103}));
  EXPECT_EQ(last.groups, (std::vector<ProcessId>{{kBase + 100, 1000}}));  // 102's group is gone
}

TEST_F(FakeProc, ARootWhosePidWasReusedIsNotTheLease) {
  AddLeaseTree();
  ProcessTree tree(root_.string());
  auto p = CollectFrom(tree.Snapshot(), {kBase + 100, 42});
  EXPECT_TRUE(p.members.empty());
  EXPECT_TRUE(p.groups.empty());
}

TEST_F(FakeProc, AGroupNumberTakenByANewLeaderIsNotTheLease) {
  Add(1, 'S', 0, 1, 1);
  // The lease's group kBase+100 ended; a new process got that PID and leads a new group.
  Add(kBase + 100, 'S', 1, kBase + 100, 7777);
  Add(kBase + 101, 'S', kBase + 100, kBase + 100, 7778);
  ProcessTree tree(root_.string());
  LeaseProcesses known;
  known.groups = {{kBase + 100, 1000}};
  auto p = Collect(tree.Snapshot(), known);
  EXPECT_TRUE(p.members.empty());
  EXPECT_TRUE(p.groups.empty());
}

TEST_F(FakeProc, SignalHitsTheLeaseGroupsAndMembersOnly) {
  AddLeaseTree();
  std::vector<std::pair<pid_t, int>> sent;
  ProcessTree tree(root_.string(), [&](pid_t pid, int sig) {
    sent.emplace_back(pid, sig);
    return 0;
  });
  auto snap = tree.Snapshot();
  auto p = CollectFrom(snap, {kBase + 100, 1000});
  EXPECT_EQ(tree.Signal(p, snap, SIGTERM), 7);
  std::vector<std::pair<pid_t, int>> want = {{-(kBase + 100), SIGTERM}, {-(kBase + 102), SIGTERM},
                                             {kBase + 100, SIGTERM},    {kBase + 101, SIGTERM},
                                             {kBase + 102, SIGTERM},    {kBase + 103, SIGTERM},
                                             {kBase + 105, SIGTERM}};
  EXPECT_EQ(sent, want);

  // A member that ended (and whose PID was taken) since the snapshot is not signalled.
  sent.clear();
  Remove(kBase + 101);
  Add(kBase + 101, 'S', 1, kBase + 101, 9999);
  tree.Signal(p, snap, SIGKILL);
  for (const auto& [pid, sig] : sent) EXPECT_NE(pid, kBase + 101);
}

TEST_F(FakeProc, NeverSignalsInitOrTheAgent) {
  Add(1, 'S', 0, 1, 1);
  const int64_t self = ::getpid();
  const int64_t own_group = ::getpgrp();
  std::vector<pid_t> sent;
  ProcessTree tree(root_.string(), [&](pid_t pid, int) {
    sent.push_back(pid);
    return 0;
  });
  LeaseProcesses p;
  p.members = {{1, 1}};
  p.groups = {{1, 1}, {own_group, 5}};
  Add(own_group, 'S', 1, own_group, 5);
  if (self != own_group) Add(self, 'S', own_group, own_group, 6);
  p.members.push_back({self, 6});
  auto snap = tree.Snapshot();
  tree.Signal(p, snap, SIGKILL);
  EXPECT_TRUE(sent.empty());
}

// --- Real processes ---------------------------------------------------------

// Forks a process group: a leader, a child that ignores SIGTERM (in the leader's group) and a
// grandchild that made its own group. Returns the leader's PID.
pid_t ForkGroup() {
  pid_t leader = ::fork();
  if (leader == 0) {
    ::setpgid(0, 0);
    if (::fork() == 0) {
      ::signal(SIGTERM, SIG_IGN);
      if (::fork() == 0) {
        ::signal(SIGTERM, SIG_DFL);
        ::setpgid(0, 0);
        for (;;) ::pause();
      }
      for (;;) ::pause();
    }
    for (;;) ::pause();
  }
  ::setpgid(leader, leader);
  return leader;
}

template <typename F>
bool WaitFor(F done, std::chrono::milliseconds limit = std::chrono::seconds(5)) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (!done()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return true;
}

TEST(ProcessTreeReal, TermThenKillEndsAGroupWithAStubbornChild) {
  ProcessTree tree;
  pid_t leader = ForkGroup();
  ASSERT_GT(leader, 0);
  auto root = tree.Read(leader);
  ASSERT_TRUE(root);
  ProcessId root_id{root->pid, root->start_time};
  LeaseProcesses p;
  ASSERT_TRUE(WaitFor([&] {
    p = CollectFrom(tree.Snapshot(), root_id);
    return p.members.size() == 3 && p.groups.size() == 2;
  })) << p.members.size()
      << " processes";
  EXPECT_FALSE(tree.InForeignPidNamespace(leader));  // our own child

  EXPECT_GT(tree.Signal(p, tree.Snapshot(), SIGTERM), 0);
  // The leader (a zombie until reaped) and the grandchild end; the child ignores SIGTERM.
  ASSERT_TRUE(WaitFor([&] {
    p = Collect(tree.Snapshot(), p);
    return p.members.size() == 1;
  })) << p.members.size()
      << " processes";
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  p = Collect(tree.Snapshot(), p);
  ASSERT_EQ(p.members.size(), 1u);  // still there: it ignores SIGTERM
  EXPECT_NE(p.members[0].pid, leader);
  const ProcessId stubborn = p.members[0];

  EXPECT_GT(tree.Signal(p, tree.Snapshot(), SIGKILL), 0);
  ASSERT_TRUE(WaitFor([&] {
    p = Collect(tree.Snapshot(), p);
    return p.members.empty();
  }));
  EXPECT_FALSE(tree.Alive(stubborn));
  int status = 0;
  ASSERT_EQ(::waitpid(leader, &status, 0), leader);
  EXPECT_TRUE(WIFSIGNALED(status));
}

TEST(ProcessTreeReal, TheAgentsOwnProcessAndGroupAreSafe) {
  ProcessTree tree;
  auto me = tree.Read(::getpid());
  ASSERT_TRUE(me);
  LeaseProcesses p;
  p.members = {{me->pid, me->start_time}};
  p.groups = {{::getpgrp(), 0}};
  EXPECT_EQ(tree.Signal(p, tree.Snapshot(), 0), 0);  // signal 0: would only test
}

}  // namespace
}  // namespace gpuhub::agent::leases
