// NvmlGpuSource: the GPUs of this machine through NVIDIA's NVML.
//
// libnvidia-ml.so.1 is loaded with dlopen at run time, so the agent builds
// and runs on machines without NVIDIA software: Open() then returns nullptr
// and says why. No NVIDIA header is used; the few entry points are declared
// in nvml.cpp. Not thread-safe: one thread calls Read().
#pragma once

#include <memory>
#include <string>

#include "agent/inventory/gpu_source.hpp"

namespace gpuhub::agent {

class NvmlGpuSource final : public GpuSource {
 public:
  static constexpr const char* kLibrary = "libnvidia-ml.so.1";

  // Loads libnvidia-ml.so.1 and initializes NVML. nullptr when the library,
  // one of its required functions or nvmlInit fails; `why_not` (if not null)
  // then says which, naming the library.
  static std::unique_ptr<GpuSource> Open(std::string* why_not);
  // The same with another library file (tests load a fake NVML).
  static std::unique_ptr<GpuSource> Open(const std::string& library, std::string* why_not);

  ~NvmlGpuSource() override;  // nvmlShutdown, then dlclose
  NvmlGpuSource(const NvmlGpuSource&) = delete;
  NvmlGpuSource& operator=(const NvmlGpuSource&) = delete;

  // All GPUs NVML counts. Fails only when the count cannot be read; a GPU
  // whose handle cannot be had is left out, a field that cannot be read is 0
  // (uuid/name empty). Memory in MiB; processes are compute processes' PIDs.
  Result<std::vector<proto::Gpu>> Read() override;
  std::string Describe() const override;

  struct Api;  // the loaded entry points, defined in nvml.cpp

 private:
  struct Key {
    explicit Key() = default;
  };

 public:
  NvmlGpuSource(Key, std::unique_ptr<Api> api);  // only Open can call it

 private:
  std::unique_ptr<Api> api_;
};

}  // namespace gpuhub::agent
