#include "common/settings.hpp"

#include <cstdio>
#include <sstream>

#include "common/file_util.hpp"

namespace gpuhub {

Result<std::optional<int>> ParseFlags(CLI::App& app, int argc, const char* const* argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    std::ostringstream out, err;
    int code = app.exit(e, out, err);
    if (code != 0) return InvalidArgument(err.str());
    std::fputs(out.str().c_str(), stdout);
    return std::optional<int>(0);
  }
  return std::optional<int>();
}

Result<toml::table> ParseToml(std::string_view text, const std::string& origin) {
  try {  // this toml++ build reports syntax errors by exception only
    return toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    return InvalidArgument(origin + ": " + std::string(e.description()) + " (line " +
                           std::to_string(e.source().begin.line) + ")");
  }
}

Result<toml::table> ReadTomlFile(const std::string& path) {
  auto text = ReadFile(path, 1 << 20);
  if (!text.ok()) return InvalidArgument("cannot read config file: " + text.error().message);
  return ParseToml(*text, path);
}

}  // namespace gpuhub
