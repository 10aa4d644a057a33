// Parsers for the Linux /proc files the agent reports from, and disk usage.
//
// The parsers are pure: they take a file's contents and never touch the
// filesystem, so tests feed them samples and edge cases. They never throw and
// never read out of bounds; garbage gives an error or zeros as documented per
// function. ReadProcFile and DiskUsage do I/O. Everything here is thread-safe
// (no shared state).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "common/result.hpp"

namespace gpuhub::agent {

struct CpuInfo {
  std::string model;  // "unknown" when the file names no model
  int cores = 0;      // logical CPUs ("processor" entries); 0 when none is listed
};

// From /proc/cpuinfo text. The model is x86's "model name"; failing that
// ARM's "Hardware", the old ARM "Processor" line, POWER's "cpu", or a name
// built from "CPU implementer"/"CPU part"; failing all, "unknown".
CpuInfo ParseCpuInfo(std::string_view text);

// Cumulative CPU time of all CPUs, in clock ticks, from the "cpu " line of
// /proc/stat. Guest time is already included in user and nice.
struct CpuTimes {
  uint64_t user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  uint64_t Total() const { return user + nice + system + idle + iowait + irq + softirq + steal; }
  uint64_t Idle() const { return idle + iowait; }
  bool operator==(const CpuTimes&) const = default;
};

// InvalidArgument when there is no "cpu " line with at least the first four
// numbers (fields a kernel does not have yet read as 0).
Result<CpuTimes> ParseProcStat(std::string_view text);

// Percent of all CPUs busy between two samples, in [0, 100]; 0 when no time
// passed or a counter went backwards.
double CpuUsagePercent(const CpuTimes& prev, const CpuTimes& now);

struct MemInfo {
  int64_t total = 0;  // MiB
  int64_t used = 0;   // MiB: MemTotal - MemAvailable, never negative
};

// From /proc/meminfo text (values in kB). Without MemAvailable (kernels before
// 3.14) used is MemTotal - (MemFree + Buffers + Cached). InvalidArgument when
// MemTotal is missing, or when both MemAvailable and MemFree are.
Result<MemInfo> ParseMemInfo(std::string_view text);

struct DiskInfo {
  int64_t total = 0;  // GiB, rounded down
  int64_t used = 0;   // GiB, rounded down: (blocks - bfree) * frsize
};

// Usage of the filesystem holding `path`, through statvfs. Internal on error.
Result<DiskInfo> DiskUsage(const std::string& path);

// Reads all of `path` into `out` with plain open/read, reusing `out`'s
// capacity (the files under /proc report size 0, so it reads to EOF).
// NotFound when absent, kTooLarge beyond `max_bytes`, Internal otherwise.
Status ReadProcFile(const std::string& path, std::string& out, size_t max_bytes = 1 << 20);

}  // namespace gpuhub::agent
