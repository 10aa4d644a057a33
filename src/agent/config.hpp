// gpuhub-agent's settings: defaults, then a TOML file (--config), then flags.
// docs/configuration.md lists them. Plain data.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "common/result.hpp"

namespace gpuhub::agent {

struct AgentConfig {
  std::string server = "ws://127.0.0.1:8080";
  std::string token;  // --token, or read from token_file
  std::string token_file;
  std::chrono::milliseconds heartbeat = std::chrono::seconds(5);
  std::string disk_path = "/";
  std::string fake_gpus;    // a JSON file of simulated GPUs instead of NVML
  std::string docker_host;  // unix:///PATH of the Docker Engine API (containers)
  int port_min = 40000;     // host ports for containers' published ports
  int port_max = 49999;
  std::string home_root;                            // DIR: each user's DIR/<account> is mounted in
  std::string gpu_runtime = "none";                 // none, nvidia or cdi
  std::string state_dir = "/var/lib/gpuhub-agent";  // leases.json: leases across restarts
  std::string log_level = "info";
};

struct AgentInvocation {
  AgentConfig config;
  std::optional<int> exit_now;  // --help or --version was printed
};

// Parses flags and the --config file, and reads the token file. Usage errors
// come back as InvalidArgument with a message for stderr.
Result<AgentInvocation> ParseAgentCommandLine(int argc, const char* const* argv);

}  // namespace gpuhub::agent
