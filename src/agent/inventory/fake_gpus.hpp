// FakeGpuSource: GPUs described in a JSON file, for tests and for trying
// gpuhub on machines without GPUs.
//
// The file is a JSON array with one object per GPU; its position is its index:
//
//   [{"name": "Fake A100", "memory_total": 40960},
//    {"name": "Fake A100", "memory_total": 40960, "memory_used": 1024,
//     "utilization": 37, "temperature": 45, "uuid": "GPU-1234", "processes": [4242]}]
//
// `name` and `memory_total` (MiB) are required. `memory_used` (MiB, at most
// memory_total), `utilization` (0-100), `temperature` and `processes` (PIDs)
// default to 0 / empty. `uuid` defaults to "GPU-fake-<index>-<8 hex digits of
// a hash of the path>", stable for a given path; uuids must be unique. Any
// other key is an error, to catch typos.
//
// Read() checks the file's mtime, size and inode and re-parses only when one
// changed, so a steady state costs one stat(). When the file is missing or
// invalid Read() returns the error (naming the path, GPU index and field) and
// keeps returning it, without re-parsing, until the file changes; it does not
// return stale GPUs itself: keeping the last good list is the caller's choice
// (InventorySampler does). Writers should replace the file atomically (write
// and rename) so no half-written file is seen.
//
// Not thread-safe: one thread calls Read().
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "agent/inventory/gpu_source.hpp"

namespace gpuhub::agent {

class FakeGpuSource final : public GpuSource {
 public:
  explicit FakeGpuSource(std::string path);

  Result<std::vector<proto::Gpu>> Read() override;
  std::string Describe() const override;  // "fake GPUs from <path>"

  // Parses file contents; `path` is used in messages and default uuids.
  static Result<std::vector<proto::Gpu>> Parse(std::string_view text, const std::string& path);

  // How many times the file was parsed (for tests of change detection).
  int parse_count() const { return parse_count_; }

 private:
  struct Stamp {
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = 0;
    int64_t mtime_sec = 0;
    int64_t mtime_nsec = 0;
    bool operator==(const Stamp&) const = default;
  };

  std::string path_;
  std::optional<Stamp> stamp_;                           // of the file last parsed
  std::optional<Result<std::vector<proto::Gpu>>> last_;  // what that parse gave
  int parse_count_ = 0;
};

}  // namespace gpuhub::agent
