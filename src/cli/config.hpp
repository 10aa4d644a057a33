// The gpuhub CLI's saved login: server URL, token and account, kept in
// <config dir>/gpuhub/config.json (mode 0600, directory 0700), where the
// config dir is $XDG_CONFIG_HOME, else $HOME/.config. GPUHUB_SERVER and
// GPUHUB_TOKEN override the file. Plain data and functions; thread-safe as
// the filesystem is.
#pragma once

#include <functional>
#include <string>

#include "common/result.hpp"

namespace gpuhub::cli {

struct Config {
  std::string server;   // "http://host:port[/path]"; empty when never logged in
  std::string token;    // access token; empty when logged out
  std::string account;  // who logged in (informational)
};

// Reads environment variables (std::getenv in the program, a map in tests).
using Getenv = std::function<const char*(const char*)>;

// The file's path; empty when neither XDG_CONFIG_HOME nor HOME is set.
std::string ConfigPath(const Getenv& env);

// The saved config (empty fields when the file does not exist), then
// GPUHUB_SERVER and GPUHUB_TOKEN applied over it. A file that is not valid
// JSON is kInvalidArgument naming the path.
Result<Config> LoadConfig(const Getenv& env);
// The file alone, without the environment's overrides.
Result<Config> LoadConfigFile(const std::string& path);
Status SaveConfig(const std::string& path, const Config& config);

}  // namespace gpuhub::cli
