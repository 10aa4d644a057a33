// A stand-in for libnvidia-ml.so.1 that nvml_test.cpp loads in its place.
//
// It implements the entry points NvmlGpuSource uses with the same C ABI, over
// a few devices whose behaviour tests set through the FakeNvml* functions
// (looked up with dlsym). Built as a shared library twice: with the _v3/_v2
// process queries (v2 struct), and with FAKE_NVML_V1_ONLY only the original
// query (v1 struct). Not thread-safe; tests call it from one thread.

#include <cstdio>
#include <cstring>

namespace {

struct ProcessInfoV1 {
  unsigned int pid;
  unsigned long long usedGpuMemory;
};
struct ProcessInfoV2 {
  unsigned int pid;
  unsigned long long usedGpuMemory;
  unsigned int gpuInstanceId;
  unsigned int computeInstanceId;
};
struct Memory {
  unsigned long long total, free, used;
};
struct Utilization {
  unsigned int gpu, memory;
};

constexpr int kMaxDevices = 8;
constexpr unsigned kMaxProcesses = 256;

struct Device {
  unsigned int index = 0;
  int fail_mask = 0;  // FakeNvmlFail bits
  unsigned int processes = 0;
  unsigned int grow = 0;  // processes added after each "insufficient size"
};

struct State {
  int init_result = 0;
  int count_result = 0;
  bool initialized = false;
  unsigned int count = 0;
  Device devices[kMaxDevices];
  int process_calls = 0;
};

State state;

constexpr int kFailUuid = 1, kFailName = 2, kFailMemory = 4, kFailUtilization = 8,
              kFailTemperature = 16, kFailProcesses = 32, kFailHandle = 64;

constexpr int kSuccess = 0, kErrorInvalidArgument = 2, kErrorNotSupported = 3,
              kErrorInsufficientSize = 7, kErrorUninitialized = 1;

Device* Get(void* handle) { return static_cast<Device*>(handle); }

unsigned int Pid(const Device& d, unsigned int k) {
  // Descending, with one duplicate, so the source must sort and dedupe.
  return k == 0 ? 1000 * (d.index + 1) + 1 : 1000 * (d.index + 1) + d.processes - k;
}

template <typename Info>
int Processes(void* dev, unsigned int* count, Info* infos) {
  ++state.process_calls;
  Device* d = Get(dev);
  if (d->fail_mask & kFailProcesses) return kErrorNotSupported;
  if (count == nullptr) return kErrorInvalidArgument;
  if (*count < d->processes) {
    *count = d->processes;
    d->processes = d->processes + d->grow < kMaxProcesses ? d->processes + d->grow : kMaxProcesses;
    return kErrorInsufficientSize;
  }
  for (unsigned int k = 0; k < d->processes; ++k) {
    Info info{};
    info.pid = Pid(*d, k);
    info.usedGpuMemory = 1ull << 30;
    infos[k] = info;
  }
  *count = d->processes;
  return kSuccess;
}

}  // namespace

extern "C" {

// Test controls.
void FakeNvmlReset() { state = State{}; }
void FakeNvmlSetInitResult(int rc) { state.init_result = rc; }
void FakeNvmlSetCountResult(int rc) { state.count_result = rc; }
void FakeNvmlSetDeviceCount(unsigned int n) {
  state.count = n < kMaxDevices ? n : kMaxDevices;
  for (unsigned int i = 0; i < kMaxDevices; ++i) state.devices[i].index = i;
}
void FakeNvmlFail(unsigned int device, int mask) { state.devices[device].fail_mask = mask; }
void FakeNvmlSetProcesses(unsigned int device, unsigned int n, unsigned int grow) {
  state.devices[device].processes = n;
  state.devices[device].grow = grow;
}
int FakeNvmlInitialized() { return state.initialized ? 1 : 0; }
int FakeNvmlProcessCalls() { return state.process_calls; }

// NVML.
int nvmlInit_v2() {
  if (state.init_result != kSuccess) return state.init_result;
  state.initialized = true;
  return kSuccess;
}
int nvmlShutdown() {
  if (!state.initialized) return kErrorUninitialized;
  state.initialized = false;
  return kSuccess;
}
const char* nvmlErrorString(int rc) {
  switch (rc) {
    case 0:
      return "Success";
    case 9:
      return "Driver Not Loaded";
    case 15:
      return "GPU is lost";
    default:
      return "Unknown Error";
  }
}
int nvmlSystemGetDriverVersion(char* buf, unsigned int length) {
  std::snprintf(buf, length, "999.99");
  return kSuccess;
}
int nvmlDeviceGetCount_v2(unsigned int* count) {
  if (state.count_result != kSuccess) return state.count_result;
  *count = state.count;
  return kSuccess;
}
int nvmlDeviceGetHandleByIndex_v2(unsigned int index, void** device) {
  if (index >= state.count) return kErrorInvalidArgument;
  if (state.devices[index].fail_mask & kFailHandle) return 15;
  *device = &state.devices[index];
  return kSuccess;
}
int nvmlDeviceGetName(void* dev, char* name, unsigned int length) {
  if (Get(dev)->fail_mask & kFailName) return kErrorNotSupported;
  std::snprintf(name, length, "Fake GPU %u", Get(dev)->index);
  return kSuccess;
}
int nvmlDeviceGetUUID(void* dev, char* uuid, unsigned int length) {
  if (Get(dev)->fail_mask & kFailUuid) return kErrorNotSupported;
  std::snprintf(uuid, length, "GPU-fake-nvml-%u", Get(dev)->index);
  return kSuccess;
}
int nvmlDeviceGetMemoryInfo(void* dev, Memory* memory) {
  if (Get(dev)->fail_mask & kFailMemory) return kErrorNotSupported;
  unsigned long long total = (Get(dev)->index + 1ull) << 34;  // 16 GiB per index
  unsigned long long used = (1ull << 30) + (512ull << 10);    // 1 GiB + 512 KiB
  *memory = Memory{total, total - used, used};
  return kSuccess;
}
int nvmlDeviceGetUtilizationRates(void* dev, Utilization* util) {
  if (Get(dev)->fail_mask & kFailUtilization) return kErrorNotSupported;
  *util = Utilization{10 * Get(dev)->index + 5, 1};
  return kSuccess;
}
int nvmlDeviceGetTemperature(void* dev, int sensor, unsigned int* temp) {
  if ((Get(dev)->fail_mask & kFailTemperature) || sensor != 0) return kErrorNotSupported;
  *temp = 40 + Get(dev)->index;
  return kSuccess;
}
int nvmlDeviceGetComputeRunningProcesses(void* dev, unsigned int* count, ProcessInfoV1* infos) {
  return Processes(dev, count, infos);
}
#ifndef FAKE_NVML_V1_ONLY
int nvmlDeviceGetComputeRunningProcesses_v2(void* dev, unsigned int* count, ProcessInfoV2* infos) {
  return Processes(dev, count, infos);
}
int nvmlDeviceGetComputeRunningProcesses_v3(void* dev, unsigned int* count, ProcessInfoV2* infos) {
  return Processes(dev, count, infos);
}
#endif

}  // extern "C"
