// Plain request types of the task (lease) service, free of any I/O so the
// request decoders (and their fuzz target) can use them.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace gpuhub::tasks {

struct TaskRequest {
  std::string machine_id;
  std::string containername;
  std::string command;
  std::chrono::milliseconds duration{0};  // > 0
  std::optional<int> gpu_count;           // exactly one of gpu_count and gpus
  std::optional<std::vector<int>> gpus;   // distinct, non-negative
};

struct CancelRequest {
  int64_t task_id = 0;
  std::string machine_id;
};

}  // namespace gpuhub::tasks
