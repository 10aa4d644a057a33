#include "agent/config.hpp"

#include <toml++/toml.h>

#include <CLI/CLI.hpp>
#include <charconv>
#include <set>

#include "common/file_util.hpp"
#include "common/settings.hpp"
#include "common/time_util.hpp"

namespace gpuhub::agent {
namespace {

// "MIN-MAX" within 1-65535.
Status ParsePortRange(std::string_view text, AgentConfig& c) {
  auto bad = [&] {
    return InvalidArgument("port range must be MIN-MAX within 1-65535, got \"" + std::string(text) +
                           "\"");
  };
  size_t dash = text.find('-');
  if (dash == std::string_view::npos) return bad();
  int lo = 0;
  int hi = 0;
  auto a = std::from_chars(text.data(), text.data() + dash, lo);
  auto b = std::from_chars(text.data() + dash + 1, text.data() + text.size(), hi);
  if (a.ec != std::errc() || a.ptr != text.data() + dash || b.ec != std::errc() ||
      b.ptr != text.data() + text.size() || lo < 1 || hi > 65535 || lo > hi) {
    return bad();
  }
  c.port_min = lo;
  c.port_max = hi;
  return Status::Ok();
}

Status ApplyToml(const std::string& path, AgentConfig& c) {
  auto parsed = ReadTomlFile(path);
  if (!parsed.ok()) return parsed.error();
  const toml::table& root = *parsed;
  static const std::set<std::string> kStrings = {
      "server",    "token",     "token_file", "disk_path", "fake_gpus",   "docker_host",
      "log_level", "heartbeat", "port_range", "home_root", "gpu_runtime", "state_dir"};
  for (const auto& [key, node] : root) {
    std::string k(key.str());
    if (!kStrings.count(k)) return InvalidArgument(path + ": unknown setting " + k);
    if (k == "heartbeat") {
      if (auto n = node.value<double>(); n && (node.is_number()) && *n > 0) {
        c.heartbeat = std::chrono::milliseconds(static_cast<int64_t>(*n * 1000));
        continue;
      }
      auto d = node.value<std::string>()
                   ? ParseDuration(*node.value<std::string>(), std::chrono::seconds(1))
                   : Result<std::chrono::milliseconds>(InvalidArgument(""));
      if (!d.ok() || d->count() <= 0) {
        return InvalidArgument(path + ": heartbeat must be a positive number of seconds");
      }
      c.heartbeat = *d;
      continue;
    }
    auto v = node.value<std::string>();
    if (!v) return InvalidArgument(path + ": " + k + " must be a string");
    if (k == "server") c.server = *v;
    if (k == "token") c.token = *v;
    if (k == "token_file") c.token_file = *v;
    if (k == "disk_path") c.disk_path = *v;
    if (k == "fake_gpus") c.fake_gpus = *v;
    if (k == "docker_host") c.docker_host = *v;
    if (k == "log_level") c.log_level = *v;
    if (k == "port_range") {
      if (auto s = ParsePortRange(*v, c); !s.ok())
        return InvalidArgument(path + ": " + s.error().message);
    }
    if (k == "home_root") c.home_root = *v;
    if (k == "gpu_runtime") c.gpu_runtime = *v;
    if (k == "state_dir") c.state_dir = *v;
  }
  return Status::Ok();
}

}  // namespace

Result<AgentInvocation> ParseAgentCommandLine(int argc, const char* const* argv) {
  AgentInvocation inv;
  AgentConfig& c = inv.config;
  CLI::App app{"gpuhub-agent: reports this GPU machine to gpuhubd and runs its work",
               "gpuhub-agent"};
  std::string config_file;
  std::optional<std::string> server, token, token_file, disk_path, fake_gpus, docker_host,
      log_level, port_range, home_root, gpu_runtime, state_dir;
  std::optional<double> heartbeat;
  app.add_option("--config", config_file, "TOML settings file");
  app.add_option("--server", server, "server URL, ws://HOST:PORT or wss://HOST:PORT");
  app.add_option("--token", token, "agent token (prefer --token-file: flags are visible in ps)");
  app.add_option("--token-file", token_file, "file holding the agent token");
  app.add_option("--heartbeat", heartbeat, "seconds between heartbeats (fractions allowed)")
      ->check(CLI::Range(0.05, 3600.0));
  app.add_option("--disk-path", disk_path, "file system whose usage is reported");
  app.add_option("--fake-gpus", fake_gpus, "JSON file of simulated GPUs (tests, demos)");
  app.add_option("--docker-host", docker_host, "Docker Engine API socket, unix:///PATH");
  app.add_option("--port-range", port_range, "host ports for containers, MIN-MAX (40000-49999)");
  app.add_option("--home-root", home_root, "mount DIR/<account> into each user's containers");
  app.add_option("--gpu-runtime", gpu_runtime, "how containers reach GPUs: none, nvidia or cdi");
  app.add_option("--state-dir", state_dir,
                 "directory of the agent's lease state (default /var/lib/gpuhub-agent)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error");
  app.set_version_flag("--version", "gpuhub-agent 0.1.0");
  auto exit_now = ParseFlags(app, argc, argv);
  if (!exit_now.ok()) return exit_now.error();
  if (*exit_now) {
    inv.exit_now = **exit_now;
    return inv;
  }
  if (!config_file.empty()) {
    if (auto s = ApplyToml(config_file, c); !s.ok()) return s.error();
  }
  if (server) c.server = *server;
  if (token) c.token = *token;
  if (token_file) c.token_file = *token_file;
  if (heartbeat) c.heartbeat = std::chrono::milliseconds(static_cast<int64_t>(*heartbeat * 1000));
  if (disk_path) c.disk_path = *disk_path;
  if (fake_gpus) c.fake_gpus = *fake_gpus;
  if (docker_host) c.docker_host = *docker_host;
  if (log_level) c.log_level = *log_level;
  if (port_range) {
    if (auto s = ParsePortRange(*port_range, c); !s.ok()) return s.error();
  }
  if (home_root) c.home_root = *home_root;
  if (gpu_runtime) c.gpu_runtime = *gpu_runtime;
  if (state_dir) c.state_dir = *state_dir;
  if (c.gpu_runtime != "none" && c.gpu_runtime != "nvidia" && c.gpu_runtime != "cdi") {
    return InvalidArgument("--gpu-runtime must be none, nvidia or cdi, got \"" + c.gpu_runtime +
                           "\"");
  }
  if (!c.home_root.empty() && !c.home_root.starts_with('/')) {
    return InvalidArgument("--home-root must be an absolute path");
  }
  if (!c.state_dir.starts_with('/')) {
    return InvalidArgument("--state-dir must be an absolute path");
  }
  if (c.token.empty() && !c.token_file.empty()) {
    auto text = ReadFile(c.token_file, 4096);
    if (!text.ok()) return InvalidArgument("cannot read token file: " + text.error().message);
    std::string t = *text;
    while (!t.empty() && (t.back() == '\n' || t.back() == '\r' || t.back() == ' ')) t.pop_back();
    c.token = t;
  }
  if (c.token.empty())
    return InvalidArgument("an agent token is required: --token-file or --token");
  if (!c.docker_host.empty() && !c.docker_host.starts_with("unix://")) {
    return InvalidArgument("--docker-host must be unix:///PATH");
  }
  return inv;
}

}  // namespace gpuhub::agent
