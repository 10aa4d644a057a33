// GpuSource: where the agent's GPU list comes from (NVML, or a fake file).
//
// The sampler owns one and calls Read() once per heartbeat from one thread.
// Implementations need not be thread-safe.
#pragma once

#include <string>
#include <vector>

#include "common/result.hpp"
#include "proto/inventory.hpp"

namespace gpuhub::agent {

class GpuSource {
 public:
  virtual ~GpuSource() = default;
  // The GPUs now, ordered by index. An error means the list could not be
  // read at all (the caller keeps its previous one); a field of one GPU that
  // cannot be read is 0 instead.
  virtual Result<std::vector<proto::Gpu>> Read() = 0;
  // One line for logs: what this source is, e.g. "NVML (driver 535.104.05)".
  virtual std::string Describe() const = 0;
};

}  // namespace gpuhub::agent
