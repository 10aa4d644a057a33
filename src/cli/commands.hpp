// The gpuhub command line (docs/cli.md): parses the arguments with CLI11,
// runs one command against gpuhubd and returns the process exit code
// (0 success, 1 the server refused, 2 usage error, 3 server unreachable).
// Everything it touches comes through Io, so tests drive it without a
// terminal. Not thread-safe (one call per process).
#pragma once

#include <functional>
#include <iosfwd>
#include <string>

#include "cli/config.hpp"
#include "common/result.hpp"

namespace gpuhub::cli {

struct Io {
  std::ostream& out;
  std::ostream& err;
  std::istream& in;
  Getenv env;
  bool color = false;  // ANSI colour on `out`
  size_t width = 0;    // terminal width for tables; 0: do not fit
  // Reads a password from the terminal without echo, after `prompt`.
  std::function<Result<std::string>(const std::string& prompt)> read_secret;
};

int Run(int argc, const char* const* argv, Io& io);

}  // namespace gpuhub::cli
