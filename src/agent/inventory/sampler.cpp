#include "agent/inventory/sampler.hpp"

#include <unistd.h>

#include <cerrno>
#include <climits>
#include <cstring>

namespace gpuhub::agent {
namespace {

void Note(std::vector<std::string>* problems, std::string message) {
  if (problems != nullptr) problems->push_back(std::move(message));
}

}  // namespace

InventorySampler::InventorySampler(std::unique_ptr<GpuSource> gpus, std::string disk_path,
                                   std::string procfs_root)
    : gpus_(std::move(gpus)),
      disk_path_(std::move(disk_path)),
      stat_path_(procfs_root + "/stat"),
      meminfo_path_(procfs_root + "/meminfo"),
      cpuinfo_path_(procfs_root + "/cpuinfo") {
  // The baseline for the first sample's CPU usage.
  if (ReadProcFile(stat_path_, buf_).ok()) {
    if (auto t = ParseProcStat(buf_); t.ok()) {
      cpu_times_ = *t;
      have_cpu_times_ = true;
    }
  }
}

std::string InventorySampler::DescribeGpus() const {
  return gpus_ != nullptr ? gpus_->Describe() : "no GPU source";
}

void InventorySampler::ReadCpuInfo(std::vector<std::string>* problems) {
  // 4 MiB: /proc/cpuinfo of a 256-thread machine is well under 1 MiB.
  if (Status s = ReadProcFile(cpuinfo_path_, buf_, 4 << 20); !s.ok()) {
    Note(problems, s.error().message);
    return;
  }
  CpuInfo info = ParseCpuInfo(buf_);
  if (info.cores == 0) {
    long n = ::sysconf(_SC_NPROCESSORS_ONLN);
    info.cores = n > 0 ? static_cast<int>(n) : 0;
  }
  last_.cpu.name = std::move(info.model);
  last_.cpu.cores = info.cores;
  have_cpu_info_ = true;
  // cpuinfo is the biggest file read; do not keep its buffer.
  std::string().swap(buf_);
}

proto::Inventory InventorySampler::Sample(std::vector<std::string>* problems) {
  char host[HOST_NAME_MAX + 1] = {};
  if (::gethostname(host, sizeof host - 1) == 0) {
    last_.hostname = host;
  } else {
    Note(problems, std::string("gethostname failed: ") + std::strerror(errno));
  }

  if (!have_cpu_info_) ReadCpuInfo(problems);

  if (Status s = ReadProcFile(stat_path_, buf_); !s.ok()) {
    Note(problems, s.error().message);
  } else if (auto t = ParseProcStat(buf_); !t.ok()) {
    Note(problems, stat_path_ + ": " + t.error().message);
  } else {
    last_.cpu.usage = have_cpu_times_ ? CpuUsagePercent(cpu_times_, *t) : 0;
    cpu_times_ = *t;
    have_cpu_times_ = true;
  }

  if (Status s = ReadProcFile(meminfo_path_, buf_); !s.ok()) {
    Note(problems, s.error().message);
  } else if (auto m = ParseMemInfo(buf_); !m.ok()) {
    Note(problems, meminfo_path_ + ": " + m.error().message);
  } else {
    last_.memory = {m->total, m->used};
  }

  if (auto d = DiskUsage(disk_path_); !d.ok()) {
    Note(problems, d.error().message);
  } else {
    last_.disk = {d->total, d->used};
  }

  if (gpus_ != nullptr) {
    if (auto g = gpus_->Read(); !g.ok()) {
      Note(problems, g.error().message);
    } else {
      last_.gpus = std::move(*g);
    }
  }
  return last_;
}

}  // namespace gpuhub::agent
