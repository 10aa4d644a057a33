// InventorySampler: measures this machine into a proto::Inventory.
//
// Runs once per heartbeat (default every 5 s), so it is cheap: /proc files
// are read with plain read() into buffers it keeps, /proc/cpuinfo only once
// (the CPU model and count do not change while the agent runs), and nothing
// is parsed with regexes. CPU usage is the busy share of all CPUs since the
// previous Sample(), or since construction for the first one (0 when no clock
// tick passed).
//
// Sample() never fails: a part that cannot be measured keeps the value of the
// last sample that measured it (zeros before any), and the reason is added to
// `problems`. The GPU list likewise stays the last good one while the
// GpuSource fails (a fake file being edited, NVML hiccups).
//
// Not thread-safe: one thread (the agent's timer) calls Sample().
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "agent/inventory/gpu_source.hpp"
#include "agent/inventory/procfs.hpp"
#include "proto/inventory.hpp"

namespace gpuhub::agent {

class InventorySampler {
 public:
  // `gpus` may be null: the machine reports no GPUs. `disk_path` is the
  // filesystem reported as "disk"; `procfs_root` is where cpuinfo, stat and
  // meminfo are read (tests point it at a directory of samples).
  explicit InventorySampler(std::unique_ptr<GpuSource> gpus, std::string disk_path = "/",
                            std::string procfs_root = "/proc");

  // The machine now; `ip` is left empty. Problems found on the way are
  // appended to `problems` when it is not null.
  proto::Inventory Sample(std::vector<std::string>* problems = nullptr);

  // The GPU source's Describe(), or "no GPU source".
  std::string DescribeGpus() const;

 private:
  void ReadCpuInfo(std::vector<std::string>* problems);

  std::unique_ptr<GpuSource> gpus_;
  std::string disk_path_;
  std::string stat_path_, meminfo_path_, cpuinfo_path_;
  std::string buf_;  // reused for every /proc read
  bool have_cpu_times_ = false;
  CpuTimes cpu_times_;  // at the previous sample
  bool have_cpu_info_ = false;
  proto::Inventory last_;  // the previous result: what a failing part keeps
};

}  // namespace gpuhub::agent
