// gpuhubd's settings: defaults, then a TOML file (--config), then flags.
// docs/configuration.md lists every setting. Plain data; thread-safe to read.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "common/result.hpp"

namespace gpuhub::server {

struct ServerConfig {
  std::string listen = "127.0.0.1:8080";
  std::string data_dir = "./var";
  std::string web_root;    // default: the source tree's web/ (set by the build)
  int io_threads = 0;      // 0: one per core
  int worker_threads = 0;  // 0: one per core but one, at least 1
  std::string log_level = "info";

  size_t body_bytes = 1 << 20;
  size_t photo_bytes = 2 << 20;
  size_t header_bytes = 16 << 10;
  std::chrono::milliseconds idle_timeout = std::chrono::seconds(60);
  std::chrono::milliseconds read_timeout = std::chrono::seconds(15);
  std::chrono::milliseconds write_timeout = std::chrono::seconds(30);
  std::chrono::milliseconds shutdown_timeout = std::chrono::seconds(10);
  // How long a container operation waits for the machine's agent to answer.
  std::chrono::milliseconds agent_timeout = std::chrono::seconds(60);

  std::chrono::milliseconds token_lifetime = std::chrono::hours(24);
  int login_max_failures = 10;
  std::chrono::milliseconds login_window = std::chrono::seconds(60);

  // Leases: the longest duration a task may ask for; how long a lease's
  // processes get between SIGTERM and SIGKILL; how long a machine may stay
  // offline with leases running before they are marked lost.
  std::chrono::milliseconds max_duration = std::chrono::hours(72);
  std::chrono::milliseconds kill_grace = std::chrono::seconds(30);
  std::chrono::milliseconds lost_grace = std::chrono::minutes(10);

  // Agents send a heartbeat this often; a machine is offline after 3 missed.
  std::chrono::milliseconds heartbeat = std::chrono::seconds(5);

  std::optional<std::string> admin_password;  // from GPUHUB_ADMIN_PASSWORD
};

// `gpuhubd machine add|list|remove|rotate-token [ID]`: manage machines in the
// data dir without a running server.
struct MachineCommand {
  std::string verb;  // "add", "list", "remove" or "rotate-token"
  std::string id;    // empty for "list"
};

// What the command line asked for: run the server, or print help/version and
// exit with `exit_code`.
struct Invocation {
  ServerConfig config;
  std::optional<int> exit_now;
  std::optional<MachineCommand> machine;  // set: run this command instead of the server
};

// Parses flags and the --config file. Usage errors come back as
// InvalidArgument with a message for stderr.
Result<Invocation> ParseCommandLine(int argc, const char* const* argv, const char* web_root);

// Applies the TOML document `text` (named `origin` in errors) to `config`.
Status ApplyToml(std::string_view text, const std::string& origin, ServerConfig& config);

// "HOST:PORT" -> host and port. InvalidArgument if malformed.
Result<std::pair<std::string, unsigned short>> SplitHostPort(std::string_view listen);

}  // namespace gpuhub::server
