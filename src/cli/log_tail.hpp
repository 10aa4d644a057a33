// LogTail: turns successive reads of a task's log, each the last 64 KiB of
// the output so far (GET /api/task/<id>/log), into the new output alone, so
// that a follower prints every byte once.
//
// While the log is shorter than the server's window it only grows: the new
// output is what follows the part already seen. Once the window slides, the
// new read's start is matched against the end of what was seen (the longest
// overlap); when nothing overlaps, output was missed between two reads and
// Next says so. Not thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace gpuhub::cli {

class LogTail {
 public:
  explicit LogTail(size_t window = 64 * 1024) : window_(window) {}

  struct Update {
    std::string text;  // output not given before
    bool gap = false;  // some output was lost between the reads
  };
  // `log` is the latest read of the whole window.
  Update Next(std::string_view log);

 private:
  size_t window_;
  std::string seen_;  // the last read
};

}  // namespace gpuhub::cli
