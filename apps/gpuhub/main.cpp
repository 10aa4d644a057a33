// gpuhub: the command-line client (docs/cli.md). Wires the terminal and the
// process environment to gpuhub::cli::Run.
#include <cstdlib>
#include <iostream>

#include "cli/commands.hpp"
#include "cli/terminal.hpp"

int main(int argc, char** argv) {
  using namespace gpuhub::cli;
  Io io{std::cout, std::cerr, std::cin, [](const char* name) { return std::getenv(name); }};
  const char* no_color = std::getenv("NO_COLOR");
  io.color = StdoutIsTerminal() && !(no_color && *no_color);
  io.width = TerminalWidth();
  io.read_secret = ReadSecret;
  return Run(argc, argv, io);
}
