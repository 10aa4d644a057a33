#include "agent/inventory/nvml.hpp"

#include <dlfcn.h>

#include <algorithm>
#include <cstring>

namespace gpuhub::agent {
namespace {

// The parts of nvml.h we use, declared by hand (ABI-stable since NVML 10).
using NvmlReturn = int;
struct NvmlDeviceOpaque;
using NvmlDevice = NvmlDeviceOpaque*;
struct NvmlMemory {
  unsigned long long total, free, used;  // bytes
};
struct NvmlUtilization {
  unsigned int gpu, memory;  // percent
};
// nvmlProcessInfo_v1_t, taken by nvmlDeviceGetComputeRunningProcesses.
struct NvmlProcessInfoV1 {
  unsigned int pid;
  unsigned long long usedGpuMemory;
};
// nvmlProcessInfo_v2_t (also nvmlProcessInfo_t), taken by the _v2 and _v3 functions.
struct NvmlProcessInfoV2 {
  unsigned int pid;
  unsigned long long usedGpuMemory;
  unsigned int gpuInstanceId;
  unsigned int computeInstanceId;
};
static_assert(sizeof(NvmlProcessInfoV1) == 16 && sizeof(NvmlProcessInfoV2) == 24);

constexpr NvmlReturn kSuccess = 0;
constexpr NvmlReturn kErrorInsufficientSize = 7;
constexpr int kTemperatureGpu = 0;        // NVML_TEMPERATURE_GPU
constexpr unsigned kNameBufferSize = 96;  // NVML_DEVICE_NAME_V2_BUFFER_SIZE
constexpr unsigned kUuidBufferSize = 96;  // NVML_DEVICE_UUID_V2_BUFFER_SIZE
constexpr unsigned kVersionBufferSize = 80;
constexpr size_t kMaxProcesses = 1 << 16;

template <typename F>
bool Symbol(void* lib, const char* name, F& out) {
  void* p = ::dlsym(lib, name);
  if (p == nullptr) return false;
  out = reinterpret_cast<F>(p);
  return true;
}

// A C string from a buffer NVML filled, even if it did not terminate it.
std::string FromBuffer(const char* buf, size_t size) {
  return std::string(buf, strnlen(buf, size));
}

}  // namespace

struct NvmlGpuSource::Api {
  std::string library;
  void* lib = nullptr;
  bool initialized = false;
  std::string driver;

  NvmlReturn (*init)() = nullptr;
  NvmlReturn (*shutdown)() = nullptr;
  const char* (*error_string)(NvmlReturn) = nullptr;
  NvmlReturn (*get_count)(unsigned int*) = nullptr;
  NvmlReturn (*get_handle)(unsigned int, NvmlDevice*) = nullptr;
  NvmlReturn (*get_name)(NvmlDevice, char*, unsigned int) = nullptr;
  NvmlReturn (*get_uuid)(NvmlDevice, char*, unsigned int) = nullptr;
  NvmlReturn (*get_memory)(NvmlDevice, NvmlMemory*) = nullptr;
  NvmlReturn (*get_utilization)(NvmlDevice, NvmlUtilization*) = nullptr;
  NvmlReturn (*get_temperature)(NvmlDevice, int, unsigned int*) = nullptr;
  // At most one of these is set: the newest the library has.
  NvmlReturn (*get_processes_v2)(NvmlDevice, unsigned int*, NvmlProcessInfoV2*) = nullptr;
  NvmlReturn (*get_processes_v1)(NvmlDevice, unsigned int*, NvmlProcessInfoV1*) = nullptr;
  NvmlReturn (*get_driver_version)(char*, unsigned int) = nullptr;

  // Reused between reads so a steady state allocates nothing for processes.
  std::vector<NvmlProcessInfoV2> infos_v2;
  std::vector<NvmlProcessInfoV1> infos_v1;

  ~Api() {
    if (initialized) shutdown();
    if (lib != nullptr) ::dlclose(lib);
  }

  std::string ErrorText(NvmlReturn rc) const {
    const char* s = error_string != nullptr ? error_string(rc) : nullptr;
    return s != nullptr ? std::string(s) : "NVML error " + std::to_string(rc);
  }

  // PIDs of compute processes on `dev`, sorted and unique; empty on error.
  template <typename Info>
  void Processes(NvmlReturn (*fn)(NvmlDevice, unsigned int*, Info*), std::vector<Info>& buf,
                 NvmlDevice dev, std::vector<int64_t>& out) {
    for (int attempt = 0; attempt < 4; ++attempt) {
      unsigned int count = static_cast<unsigned int>(buf.size());
      NvmlReturn rc = fn(dev, &count, buf.empty() ? nullptr : buf.data());
      if (rc == kSuccess) {
        count = std::min<unsigned int>(count, static_cast<unsigned int>(buf.size()));
        for (unsigned int i = 0; i < count; ++i) out.push_back(buf[i].pid);
        std::sort(out.begin(), out.end());
        out.erase(std::unique(out.begin(), out.end()), out.end());
        return;
      }
      if (rc != kErrorInsufficientSize) return;
      // Room for what NVML asked plus processes that start meanwhile.
      size_t want = std::max<size_t>(count, buf.size() * 2) + 8;
      buf.resize(std::min(want, kMaxProcesses));
    }
  }
};

std::unique_ptr<GpuSource> NvmlGpuSource::Open(std::string* why_not) {
  return Open(kLibrary, why_not);
}

std::unique_ptr<GpuSource> NvmlGpuSource::Open(const std::string& library, std::string* why_not) {
  auto fail = [&](std::string why) -> std::unique_ptr<GpuSource> {
    if (why_not != nullptr) *why_not = std::move(why);
    return nullptr;
  };
  auto api = std::make_unique<Api>();
  api->library = library;
  api->lib = ::dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (api->lib == nullptr) {
    const char* err = ::dlerror();
    return fail("cannot load " + library + ": " + (err != nullptr ? err : "unknown error"));
  }
  void* lib = api->lib;
  struct Required {
    const char* name;
    bool found;
  };
  for (Required r : {
           Required{"nvmlInit_v2", Symbol(lib, "nvmlInit_v2", api->init)},
           Required{"nvmlShutdown", Symbol(lib, "nvmlShutdown", api->shutdown)},
           Required{"nvmlErrorString", Symbol(lib, "nvmlErrorString", api->error_string)},
           Required{"nvmlDeviceGetCount_v2", Symbol(lib, "nvmlDeviceGetCount_v2", api->get_count)},
           Required{"nvmlDeviceGetHandleByIndex_v2",
                    Symbol(lib, "nvmlDeviceGetHandleByIndex_v2", api->get_handle)},
           Required{"nvmlDeviceGetName", Symbol(lib, "nvmlDeviceGetName", api->get_name)},
           Required{"nvmlDeviceGetUUID", Symbol(lib, "nvmlDeviceGetUUID", api->get_uuid)},
           Required{"nvmlDeviceGetMemoryInfo",
                    Symbol(lib, "nvmlDeviceGetMemoryInfo", api->get_memory)},
           Required{"nvmlDeviceGetUtilizationRates",
                    Symbol(lib, "nvmlDeviceGetUtilizationRates", api->get_utilization)},
           Required{"nvmlDeviceGetTemperature",
                    Symbol(lib, "nvmlDeviceGetTemperature", api->get_temperature)},
       }) {
    if (!r.found) return fail(library + " lacks " + r.name);
  }
  // Optional: the newest process query there is, and the driver version.
  if (!Symbol(lib, "nvmlDeviceGetComputeRunningProcesses_v3", api->get_processes_v2) &&
      !Symbol(lib, "nvmlDeviceGetComputeRunningProcesses_v2", api->get_processes_v2)) {
    Symbol(lib, "nvmlDeviceGetComputeRunningProcesses", api->get_processes_v1);
  }
  Symbol(lib, "nvmlSystemGetDriverVersion", api->get_driver_version);

  NvmlReturn rc = api->init();
  if (rc != kSuccess) return fail("nvmlInit_v2 in " + library + " failed: " + api->ErrorText(rc));
  api->initialized = true;
  if (api->get_driver_version != nullptr) {
    char buf[kVersionBufferSize] = {};
    if (api->get_driver_version(buf, sizeof buf) == kSuccess) {
      api->driver = FromBuffer(buf, sizeof buf);
    }
  }
  api->infos_v2.resize(api->get_processes_v2 != nullptr ? 32 : 0);
  api->infos_v1.resize(api->get_processes_v1 != nullptr ? 32 : 0);
  return std::make_unique<NvmlGpuSource>(Key{}, std::move(api));
}

NvmlGpuSource::NvmlGpuSource(Key, std::unique_ptr<Api> api) : api_(std::move(api)) {}

NvmlGpuSource::~NvmlGpuSource() = default;

Result<std::vector<proto::Gpu>> NvmlGpuSource::Read() {
  Api& a = *api_;
  unsigned int count = 0;
  if (NvmlReturn rc = a.get_count(&count); rc != kSuccess) {
    return Internal("nvmlDeviceGetCount_v2 failed: " + a.ErrorText(rc));
  }
  std::vector<proto::Gpu> gpus;
  gpus.reserve(count);
  for (unsigned int i = 0; i < count; ++i) {
    NvmlDevice dev = nullptr;
    if (a.get_handle(i, &dev) != kSuccess) continue;
    proto::Gpu& g = gpus.emplace_back();
    g.index = static_cast<int>(i);
    char buf[std::max(kNameBufferSize, kUuidBufferSize)] = {};
    if (a.get_uuid(dev, buf, kUuidBufferSize) == kSuccess) g.uuid = FromBuffer(buf, sizeof buf);
    std::memset(buf, 0, sizeof buf);
    if (a.get_name(dev, buf, kNameBufferSize) == kSuccess) g.name = FromBuffer(buf, sizeof buf);
    NvmlMemory mem{};
    if (a.get_memory(dev, &mem) == kSuccess) {
      g.memory_total = static_cast<int64_t>(mem.total >> 20);
      g.memory_used = static_cast<int64_t>(std::min(mem.used, mem.total) >> 20);
    }
    NvmlUtilization util{};
    if (a.get_utilization(dev, &util) == kSuccess) {
      g.utilization = static_cast<int>(std::min(util.gpu, 100u));
    }
    unsigned int temp = 0;
    if (a.get_temperature(dev, kTemperatureGpu, &temp) == kSuccess) {
      g.temperature = static_cast<int>(std::min(temp, 1000u));
    }
    if (a.get_processes_v2 != nullptr) {
      a.Processes(a.get_processes_v2, a.infos_v2, dev, g.processes);
    } else if (a.get_processes_v1 != nullptr) {
      a.Processes(a.get_processes_v1, a.infos_v1, dev, g.processes);
    }
  }
  return gpus;
}

std::string NvmlGpuSource::Describe() const {
  std::string d = "NVML (" + api_->library;
  if (!api_->driver.empty()) d += ", driver " + api_->driver;
  return d + ")";
}

}  // namespace gpuhub::agent
