#include "cli/config.hpp"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/file_util.hpp"

namespace gpuhub::cli {
using nlohmann::json;

std::string ConfigPath(const Getenv& env) {
  const char* xdg = env("XDG_CONFIG_HOME");
  if (xdg && *xdg) return std::string(xdg) + "/gpuhub/config.json";
  const char* home = env("HOME");
  if (home && *home) return std::string(home) + "/.config/gpuhub/config.json";
  return {};
}

Result<Config> LoadConfigFile(const std::string& path) {
  Config c;
  if (path.empty()) return c;
  auto text = ReadFile(path, 1 << 20);
  if (!text.ok()) {
    if (text.error().code == ErrorCode::kNotFound) return c;
    return text.error();
  }
  json j = json::parse(*text, nullptr, false);
  if (!j.is_object()) return InvalidArgument(path + " is not a JSON object; remove it and log in");
  auto str = [&](const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  c.server = str("server");
  c.token = str("token");
  c.account = str("account");
  return c;
}

Result<Config> LoadConfig(const Getenv& env) {
  auto c = LoadConfigFile(ConfigPath(env));
  if (!c.ok()) return c;
  if (const char* s = env("GPUHUB_SERVER"); s && *s) c->server = s;
  if (const char* t = env("GPUHUB_TOKEN"); t && *t) c->token = t;
  return c;
}

Status SaveConfig(const std::string& path, const Config& config) {
  if (path.empty()) return InvalidArgument("neither XDG_CONFIG_HOME nor HOME is set");
  if (auto s = MakeDirs(std::filesystem::path(path).parent_path().string()); !s.ok()) return s;
  json j = {{"server", config.server}, {"token", config.token}, {"account", config.account}};
  return WriteFileAtomic(path, j.dump(2) + "\n", 0600);
}

}  // namespace gpuhub::cli
