#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <sstream>

#include "cli/api.hpp"
#include "cli/commands.hpp"
#include "cli/config.hpp"
#include "cli/log_tail.hpp"
#include "cli/table.hpp"

namespace gpuhub::cli {
namespace {

TEST(Table, AlignsAndFitsWidth) {
  Table t({"ID", "NAME"});
  t.Add({{"1"}, {"short"}});
  t.Add({{"22"}, {"a much longer name"}});
  EXPECT_EQ(t.Render(0, false), "ID  NAME\n1   short\n22  a much longer name\n");
  std::string fitted = t.Render(12, false);
  EXPECT_EQ(fitted, "ID  NAME\n1   short\n22  a much …\n");
  // The widest column is cut first; none goes below 8 characters.
  Table u({"MACHINE", "DETAILS"});
  u.Add({{"node-0001"}, {"0: 37% 1.0/40.0 alice#12  1: 0% 0.0/40.0 free"}});
  EXPECT_EQ(u.Render(30, false), "MACHINE    DETAILS\nnode-0001  0: 37% 1.0/40.0 al…\n");
  EXPECT_EQ(u.Render(5, false), "MACHINE   DETAILS\nnode-00…  0: 37% …\n");
  for (std::stringstream s(fitted); !s.eof();) {
    std::string line;
    std::getline(s, line);
    EXPECT_LE(DisplayWidth(line), 12u) << line;
  }
}

TEST(Table, ColourOnlyWhenAsked) {
  Table t({"STATE"});
  t.Add({{"online", "32"}});
  EXPECT_EQ(t.Render(0, false).find('\033'), std::string::npos);
  EXPECT_NE(t.Render(0, true).find("\033[32monline\033[0m"), std::string::npos);
}

TEST(Table, TruncateCountsCodePoints) {
  EXPECT_EQ(Truncate("héllo", 5), "héllo");
  EXPECT_EQ(Truncate("héllo", 3), "hé…");
  EXPECT_EQ(DisplayWidth("hé…"), 3u);
}

TEST(LogTail, GrowingLogGivesEachByteOnce) {
  LogTail tail(16);
  EXPECT_EQ(tail.Next("").text, "");
  EXPECT_EQ(tail.Next("abc").text, "abc");
  EXPECT_EQ(tail.Next("abc").text, "");
  EXPECT_EQ(tail.Next("abcdef").text, "def");
}

TEST(LogTail, SlidingWindowMatchesOverlap) {
  LogTail tail(8);
  EXPECT_EQ(tail.Next("01234567").text, "01234567");
  auto u = tail.Next("3456789A");
  EXPECT_EQ(u.text, "89A");
  EXPECT_FALSE(u.gap);
  u = tail.Next("3456789A");
  EXPECT_EQ(u.text, "");
  u = tail.Next("ZYXWVUTS");  // nothing in common: output was missed
  EXPECT_TRUE(u.gap);
  EXPECT_EQ(u.text, "ZYXWVUTS");
}

struct Env {
  std::map<std::string, std::string> vars;
  Getenv Get() {
    return [this](const char* name) -> const char* {
      auto it = vars.find(name);
      return it == vars.end() ? nullptr : it->second.c_str();
    };
  }
};

std::string TempDir() {
  char tmpl[] = "/tmp/gpuhub-cli-test-XXXXXX";
  return mkdtemp(tmpl);
}

TEST(Config, SavesPrivatelyAndEnvOverrides) {
  Env env;
  std::string dir = TempDir();
  env.vars["HOME"] = dir;
  std::string path = ConfigPath(env.Get());
  EXPECT_EQ(path, dir + "/.config/gpuhub/config.json");
  env.vars["XDG_CONFIG_HOME"] = dir + "/xdg";
  path = ConfigPath(env.Get());
  EXPECT_EQ(path, dir + "/xdg/gpuhub/config.json");
  auto empty = LoadConfig(env.Get());
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->server.empty());
  ASSERT_TRUE(SaveConfig(path, {"http://h:1", "tok", "alice"}).ok());
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto c = LoadConfig(env.Get());
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->server, "http://h:1");
  EXPECT_EQ(c->token, "tok");
  EXPECT_EQ(c->account, "alice");
  env.vars["GPUHUB_SERVER"] = "http://other:2";
  env.vars["GPUHUB_TOKEN"] = "t2";
  c = LoadConfig(env.Get());
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->server, "http://other:2");
  EXPECT_EQ(c->token, "t2");
  std::filesystem::remove_all(dir);
}

TEST(Api, ServerUrlsAndExitCodes) {
  auto a = ParseServer("127.0.0.1:8080");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->scheme, "http");
  EXPECT_FALSE(ParseServer("ws://h:1").ok());
  EXPECT_EQ(ExitCodeFor({ErrorCode::kUnavailable, ""}), kExitUnreachable);
  EXPECT_EQ(ExitCodeFor({ErrorCode::kInvalidArgument, ""}), kExitUsage);
  EXPECT_EQ(ExitCodeFor({ErrorCode::kConflict, ""}), kExitRefused);
  EXPECT_EQ(ExitCodeFor({ErrorCode::kUnauthenticated, ""}), kExitRefused);
}

struct Invocation {
  int code;
  std::string out, err;
};

Invocation Invoke(Env& env, std::vector<const char*> args, std::string stdin_text = "") {
  std::ostringstream out, err;
  std::istringstream in(stdin_text);
  Io io{out, err, in, env.Get()};
  io.read_secret = [](const std::string&) -> Result<std::string> { return std::string("pw"); };
  args.insert(args.begin(), "gpuhub");
  int code = Run(static_cast<int>(args.size()), args.data(), io);
  return {code, out.str(), err.str()};
}

TEST(Run, UsageErrorsAreExit2) {
  Env env;
  env.vars["HOME"] = TempDir();
  EXPECT_EQ(Invoke(env, {}).code, kExitUsage);
  EXPECT_EQ(Invoke(env, {"frobnicate"}).code, kExitUsage);
  EXPECT_EQ(Invoke(env, {"run", "-m", "n", "-c", "dev", "-t", "1h"}).code,
            kExitUsage);  // no command
  env.vars["GPUHUB_SERVER"] = "http://127.0.0.1:1";
  env.vars["GPUHUB_TOKEN"] = "t";
  auto both =
      Invoke(env, {"run", "-m", "n", "-c", "d", "-t", "1h", "-g", "1", "--gpus", "0", "--", "x"});
  EXPECT_EQ(both.code, kExitUsage);
  auto bad_time = Invoke(env, {"run", "-m", "n", "-c", "d", "-t", "soon", "-g", "1", "--", "x"});
  EXPECT_EQ(bad_time.code, kExitUsage);
  EXPECT_NE(bad_time.err.find("bad duration"), std::string::npos) << bad_time.err;
  EXPECT_EQ(Invoke(env, {"cancel", "abc"}).code, kExitUsage);
  EXPECT_EQ(Invoke(env, {"queue", "--all", "--machine", "m"}).code, kExitUsage);
}

TEST(Run, HelpIsExit0AndNamesCommands) {
  Env env;
  auto help = Invoke(env, {"--help"});
  EXPECT_EQ(help.code, kExitOk);
  for (const char* name :
       {"login", "machines", "containers", "run", "queue", "cancel", "log", "admin"}) {
    EXPECT_NE(help.out.find(name), std::string::npos) << name;
  }
  auto run_help = Invoke(env, {"run", "--help"});
  EXPECT_EQ(run_help.code, kExitOk);
  EXPECT_NE(run_help.out.find("--wait"), std::string::npos);
}

TEST(Run, UnreachableServerIsExit3) {
  Env env;
  env.vars["HOME"] = TempDir();
  env.vars["GPUHUB_SERVER"] = "http://127.0.0.1:1";
  env.vars["GPUHUB_TOKEN"] = "t";
  auto r = Invoke(env, {"machines"});
  EXPECT_EQ(r.code, kExitUnreachable);
  EXPECT_NE(r.err.find("cannot reach 127.0.0.1:1"), std::string::npos) << r.err;
  EXPECT_EQ(Invoke(env, {"login", "alice", "--password-stdin"}, "pw\n").code, kExitUnreachable);
}

TEST(Run, NotLoggedIn) {
  Env env;
  env.vars["HOME"] = TempDir();
  auto r = Invoke(env, {"machines"});
  EXPECT_EQ(r.code, kExitUsage);
  EXPECT_NE(r.err.find("gpuhub login --server"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace gpuhub::cli
