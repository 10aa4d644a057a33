// The gpuhub CLI's terminal: whether stdout is one (for colour), its width,
// and password prompts without echo. Process-wide state; call from the main
// thread.
#pragma once

#include <cstddef>
#include <string>

#include "common/result.hpp"

namespace gpuhub::cli {

bool StdoutIsTerminal();
// The columns of the terminal on stdout; 0 when it is not a terminal.
size_t TerminalWidth();
// Writes `prompt` to /dev/tty and reads one line from it with echo off.
// kInvalidArgument when there is no terminal (use --password-stdin).
Result<std::string> ReadSecret(const std::string& prompt);

}  // namespace gpuhub::cli
