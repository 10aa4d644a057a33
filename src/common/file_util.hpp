// Small file helpers for durable writes. Thread-safe as the filesystem is.
#pragma once

#include <sys/types.h>

#include <string>
#include <string_view>
#include <utility>

#include "common/result.hpp"

namespace gpuhub {

// Writes `data` to `path` through a temporary file that is fsynced and renamed
// over `path`, then fsyncs the directory: after return the file is durable and
// never seen half-written. The file gets permission bits `mode`.
Status WriteFileAtomic(const std::string& path, std::string_view data, mode_t mode);

// The whole content of `path`. kNotFound if it does not exist, kInternal on
// other errors, kTooLarge if it is bigger than `max_bytes`.
Result<std::string> ReadFile(const std::string& path, size_t max_bytes);

// Creates `path` and missing parents with mode 0700. Ok if it exists.
Status MakeDirs(const std::string& path);

// An exclusive advisory lock (flock) on a file, held until destruction.
class FileLock {
 public:
  // Creates `path` if needed and locks it. kConflict when another process
  // holds the lock, kInternal on other errors.
  static Result<FileLock> Acquire(const std::string& path);
  FileLock(FileLock&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  FileLock& operator=(FileLock&&) = delete;
  FileLock(const FileLock&) = delete;
  ~FileLock();

 private:
  explicit FileLock(int fd) : fd_(fd) {}
  int fd_;
};

}  // namespace gpuhub
