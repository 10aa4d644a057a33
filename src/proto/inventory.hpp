// What an agent reports about its machine: GPUs, CPU, memory and disk.
//
// Shared by the agent (which measures it) and the server (which serves it in
// /api/machines/info). Units follow the API contract: memory in MiB, disk in
// GiB, usage and utilization in percent. Plain data with JSON conversion;
// thread-safety is that of any value type.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/result.hpp"

namespace gpuhub::proto {

struct Gpu {
  int index = 0;
  std::string uuid;
  std::string name;
  int64_t memory_total = 0;        // MiB
  int64_t memory_used = 0;         // MiB
  int utilization = 0;             // percent
  int temperature = 0;             // degrees Celsius
  std::vector<int64_t> processes;  // PIDs of compute processes on this GPU
  bool operator==(const Gpu&) const = default;
};

struct Cpu {
  std::string name;
  int cores = 0;
  double usage = 0;  // percent of all cores, 0-100
  bool operator==(const Cpu&) const = default;
};

struct Memory {
  int64_t total = 0;  // MiB
  int64_t used = 0;   // MiB
  bool operator==(const Memory&) const = default;
};

struct Disk {
  int64_t total = 0;  // GiB
  int64_t used = 0;   // GiB
  bool operator==(const Disk&) const = default;
};

struct Inventory {
  std::string hostname;
  std::string ip;  // empty: the server uses the connection's peer address
  std::vector<Gpu> gpus;
  Cpu cpu;
  Memory memory;
  Disk disk;
  bool operator==(const Inventory&) const = default;
};

// JSON in the shape of the contract ("gpu", "cpu", "memory", "disk", plus
// "hostname" and "ip").
nlohmann::json ToJson(const Inventory& inv);
nlohmann::json ToJson(const Gpu& gpu);

// Parses what ToJson wrote. InvalidArgument naming the first bad field.
Result<Inventory> InventoryFromJson(const nlohmann::json& j);

// The parts of `now` that differ from `before`, as a JSON object with a
// subset of the keys of ToJson (all GPUs when any GPU changed); {} if equal.
nlohmann::json Diff(const Inventory& before, const Inventory& now);

// Applies a Diff to `inv`. InvalidArgument if the diff is malformed; `inv`
// is then unchanged.
Status ApplyDiff(Inventory& inv, const nlohmann::json& diff);

}  // namespace gpuhub::proto
