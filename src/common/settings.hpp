// Helpers shared by the programs' settings parsers (gpuhubd, gpuhub-agent):
// command-line parsing with CLI11 and TOML parsing with toml++, both turned
// from exceptions into return values. Thread-safe as the given objects are.
#pragma once

#include <toml++/toml.h>

#include <CLI/CLI.hpp>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.hpp"

namespace gpuhub {

// Parses the command line. nullopt: go on. A value: --help or --version was
// printed to stdout and the program should exit with it. Usage errors come
// back as InvalidArgument with CLI11's message.
Result<std::optional<int>> ParseFlags(CLI::App& app, int argc, const char* const* argv);

// Parses TOML `text`; errors name `origin` and the line.
Result<toml::table> ParseToml(std::string_view text, const std::string& origin);

// Reads and parses the TOML file at `path`.
Result<toml::table> ReadTomlFile(const std::string& path);

}  // namespace gpuhub
