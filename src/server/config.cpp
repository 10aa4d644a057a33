#include "server/config.hpp"

#include <toml++/toml.h>

#include <CLI/CLI.hpp>
#include <charconv>
#include <cstdlib>
#include <set>
#include <thread>

#include "common/file_util.hpp"
#include "common/settings.hpp"
#include "common/time_util.hpp"

namespace gpuhub::server {
namespace {

// Reads one TOML value into `out` when present; type errors name the key.
class TomlReader {
 public:
  TomlReader(const toml::table& root, const std::string& origin) : root_(root), origin_(origin) {}

  void String(std::string_view key, std::string& out) {
    if (auto n = Node(key)) {
      if (auto v = n.value<std::string>()) {
        out = *v;
      } else {
        Fail(key, "a string");
      }
    }
  }
  template <typename Int>
  void Integer(std::string_view key, Int& out, int64_t min, int64_t max) {
    if (auto n = Node(key)) {
      auto v = n.value<int64_t>();
      if (!v || *v < min || *v > max) {
        Fail(key, "an integer from " + std::to_string(min) + " to " + std::to_string(max));
      } else {
        out = static_cast<Int>(*v);
      }
    }
  }
  // A duration: a string with units ("90s", "24h") or a number of seconds.
  void Duration(std::string_view key, std::chrono::milliseconds& out) {
    auto n = Node(key);
    if (!n) return;
    if (auto i = n.value<int64_t>(); i && n.is_integer() && *i > 0) {
      out = std::chrono::seconds(*i);
    } else if (auto d = n.value<double>(); d && n.is_floating_point() && *d > 0) {
      out = std::chrono::milliseconds(static_cast<int64_t>(*d * 1000));
    } else if (auto s = n.value<std::string>()) {
      auto parsed = ParseDuration(*s, std::chrono::seconds(1));
      if (parsed.ok() && parsed->count() > 0) {
        out = *parsed;
      } else {
        Fail(key, "a positive duration like \"90s\" or \"24h\"");
      }
    } else {
      Fail(key, "a positive duration like \"90s\" or \"24h\"");
    }
  }

  Status Result() const { return error_ ? Status(*error_) : Status::Ok(); }

 private:
  toml::node_view<const toml::node> Node(std::string_view key) const { return root_.at_path(key); }
  void Fail(std::string_view key, const std::string& what) {
    if (!error_) error_ = InvalidArgument(origin_ + ": " + std::string(key) + " must be " + what);
  }

  const toml::table& root_;
  const std::string& origin_;
  std::optional<Error> error_;
};

}  // namespace

Status ApplyToml(std::string_view text, const std::string& origin, ServerConfig& c) {
  auto parsed = ParseToml(text, origin);
  if (!parsed.ok()) return parsed.error();
  const toml::table& root = *parsed;
  static const std::set<std::string> kKnown = {
      "listen",    "data",   "web_root", "io_threads", "worker_threads",
      "log_level", "limits", "auth",     "heartbeat",  "tasks"};
  for (const auto& [key, value] : root) {
    if (!kKnown.count(std::string(key.str()))) {
      return InvalidArgument(origin + ": unknown setting " + std::string(key.str()));
    }
  }
  TomlReader r(root, origin);
  r.String("listen", c.listen);
  r.String("data", c.data_dir);
  r.String("web_root", c.web_root);
  r.Integer("io_threads", c.io_threads, 0, 256);
  r.Integer("worker_threads", c.worker_threads, 0, 256);
  r.String("log_level", c.log_level);
  r.Duration("heartbeat", c.heartbeat);
  r.Integer("limits.body_bytes", c.body_bytes, 1024, int64_t{1} << 30);
  r.Integer("limits.photo_bytes", c.photo_bytes, 1024, int64_t{1} << 30);
  r.Integer("limits.header_bytes", c.header_bytes, 1024, int64_t{1} << 20);
  r.Duration("limits.idle_timeout", c.idle_timeout);
  r.Duration("limits.read_timeout", c.read_timeout);
  r.Duration("limits.write_timeout", c.write_timeout);
  r.Duration("limits.shutdown_timeout", c.shutdown_timeout);
  r.Duration("limits.agent_timeout", c.agent_timeout);
  r.Duration("auth.token_lifetime", c.token_lifetime);
  r.Integer("auth.login_max_failures", c.login_max_failures, 1, 1000000);
  r.Duration("auth.login_window", c.login_window);
  r.Duration("tasks.max_duration", c.max_duration);
  r.Duration("tasks.kill_grace", c.kill_grace);
  r.Duration("tasks.lost_grace", c.lost_grace);
  return r.Result();
}

Result<std::pair<std::string, unsigned short>> SplitHostPort(std::string_view listen) {
  size_t colon = listen.rfind(':');
  auto invalid = [&] {
    return InvalidArgument("listen address must be HOST:PORT, got \"" + std::string(listen) + "\"");
  };
  if (colon == std::string_view::npos || colon == 0) return invalid();
  std::string_view host = listen.substr(0, colon);
  if (host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  std::string_view port_text = listen.substr(colon + 1);
  unsigned port = 0;
  auto [end, ec] = std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
  if (ec != std::errc() || end != port_text.data() + port_text.size() || port > 65535 ||
      port_text.empty()) {
    return invalid();
  }
  return std::make_pair(std::string(host), static_cast<unsigned short>(port));
}

Result<Invocation> ParseCommandLine(int argc, const char* const* argv, const char* web_root) {
  Invocation inv;
  ServerConfig& c = inv.config;
  c.web_root = web_root;
  CLI::App app{"gpuhubd: the gpuhub server (REST API, WebSockets, web UI)", "gpuhubd"};
  std::string config_file;
  std::optional<std::string> listen, data, log_level, web;
  std::optional<int> io_threads, worker_threads;
  app.add_option("--config", config_file, "TOML settings file (docs/configuration.md)");
  app.add_option("--listen", listen, "HOST:PORT to listen on; port 0 picks a free one");
  app.add_option("--data", data, "data directory: database, secret, photos");
  app.add_option("--web-root", web, "directory of the web UI and preset avatars");
  app.add_option("--io-threads", io_threads, "I/O threads (0: one per core)")
      ->check(CLI::Range(0, 256));
  app.add_option("--worker-threads", worker_threads, "worker threads for password hashing")
      ->check(CLI::Range(0, 256));
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error");
  std::optional<double> heartbeat;
  app.add_option("--heartbeat", heartbeat, "seconds between agent heartbeats (fractions allowed)")
      ->check(CLI::Range(0.05, 3600.0));
  app.set_version_flag("--version", "gpuhubd 0.1.0");

  MachineCommand machine;
  CLI::App* machine_app = app.add_subcommand("machine", "manage machines without a running server");
  machine_app->require_subcommand(1);
  for (const char* verb : {"add", "remove", "rotate-token"}) {
    CLI::App* sub = machine_app->add_subcommand(
        verb, std::string(verb) == "add"      ? "register a machine; prints its agent token"
              : std::string(verb) == "remove" ? "remove a machine"
                                              : "replace a machine's agent token");
    sub->add_option("id", machine.id, "machine id")->required();
    sub->callback([&machine, verb] { machine.verb = verb; });
    sub->fallthrough();
  }
  machine_app->add_subcommand("list", "list machines")
      ->callback([&machine] { machine.verb = "list"; })
      ->fallthrough();
  machine_app->fallthrough();
  auto exit_now = ParseFlags(app, argc, argv);
  if (!exit_now.ok()) return exit_now.error();
  if (*exit_now) {
    inv.exit_now = **exit_now;
    return inv;
  }
  if (!config_file.empty()) {
    auto text = ReadFile(config_file, 1 << 20);
    if (!text.ok()) return InvalidArgument("cannot read config file: " + text.error().message);
    if (auto st = ApplyToml(*text, config_file, c); !st.ok()) return st.error();
  }
  if (listen) c.listen = *listen;
  if (data) c.data_dir = *data;
  if (web) c.web_root = *web;
  if (io_threads) c.io_threads = *io_threads;
  if (worker_threads) c.worker_threads = *worker_threads;
  if (log_level) c.log_level = *log_level;
  if (heartbeat) {
    c.heartbeat = std::chrono::milliseconds(static_cast<int64_t>(*heartbeat * 1000));
  }
  if (!machine.verb.empty()) inv.machine = machine;
  if (auto r = SplitHostPort(c.listen); !r.ok()) return r.error();
  unsigned cores = std::max(1u, std::thread::hardware_concurrency());
  if (c.io_threads == 0) c.io_threads = static_cast<int>(cores);
  // One core fewer than there are: hashing must leave the I/O threads a core.
  if (c.worker_threads == 0) c.worker_threads = static_cast<int>(std::max(1u, cores - 1));
  if (const char* pw = std::getenv("GPUHUB_ADMIN_PASSWORD"); pw && *pw) c.admin_password = pw;
  return inv;
}

}  // namespace gpuhub::server
