#include "agent/inventory/procfs.hpp"

#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

namespace gpuhub::agent {
namespace {

std::string_view Trim(std::string_view s) {
  size_t b = 0;
  while (b < s.size() && (s[b] == ' ' || s[b] == '\t' || s[b] == '\r')) ++b;
  size_t e = s.size();
  while (e > b && (s[e - 1] == ' ' || s[e - 1] == '\t' || s[e - 1] == '\r')) --e;
  return s.substr(b, e - b);
}

// Calls f(line) for each line of `text`, without the '\n'.
template <typename F>
void ForEachLine(std::string_view text, F f) {
  while (!text.empty()) {
    size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    f(line);
    if (nl == std::string_view::npos) break;
    text.remove_prefix(nl + 1);
  }
}

// Splits "key<sep>value" into trimmed parts; false without `sep`.
bool SplitKeyValue(std::string_view line, std::string_view& key, std::string_view& value) {
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return false;
  key = Trim(line.substr(0, colon));
  value = Trim(line.substr(colon + 1));
  return true;
}

// Parses a leading unsigned decimal number of `s` (after blanks) and advances
// `s` past it. False when there is none.
bool NextNumber(std::string_view& s, uint64_t& out) {
  size_t b = 0;
  while (b < s.size() && (s[b] == ' ' || s[b] == '\t')) ++b;
  const char* first = s.data() + b;
  const char* last = s.data() + s.size();
  auto [ptr, ec] = std::from_chars(first, last, out);
  if (ec != std::errc() || ptr == first) return false;
  s.remove_prefix(static_cast<size_t>(ptr - s.data()));
  return true;
}

bool IsNumber(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// A readable name for an ARM core from its MIDR fields, e.g. "ARM Neoverse-N1".
std::string ArmName(std::string_view implementer, std::string_view part) {
  struct Name {
    std::string_view code, name;
  };
  static constexpr Name kImplementers[] = {
      {"0x41", "ARM"},       {"0x42", "Broadcom"}, {"0x43", "Cavium"},
      {"0x48", "HiSilicon"}, {"0x4e", "NVIDIA"},   {"0x50", "APM"},
      {"0x51", "Qualcomm"},  {"0x61", "Apple"},    {"0xc0", "Ampere"},
  };
  static constexpr Name kArmParts[] = {
      {"0xd03", "Cortex-A53"},  {"0xd04", "Cortex-A35"},  {"0xd05", "Cortex-A55"},
      {"0xd07", "Cortex-A57"},  {"0xd08", "Cortex-A72"},  {"0xd09", "Cortex-A73"},
      {"0xd0a", "Cortex-A75"},  {"0xd0b", "Cortex-A76"},  {"0xd0c", "Neoverse-N1"},
      {"0xd0d", "Cortex-A77"},  {"0xd40", "Neoverse-V1"}, {"0xd41", "Cortex-A78"},
      {"0xd49", "Neoverse-N2"}, {"0xd4f", "Neoverse-V2"},
  };
  std::string out;
  std::string_view vendor;
  for (const Name& n : kImplementers) {
    if (n.code == implementer) vendor = n.name;
  }
  if (!vendor.empty()) {
    out = vendor;
  } else if (!implementer.empty()) {
    out = "CPU implementer " + std::string(implementer);
  } else {
    out = "CPU";
  }
  if (implementer == "0x41") {
    for (const Name& n : kArmParts) {
      if (n.code == part) return out + " " + std::string(n.name);
    }
  }
  if (!part.empty()) out += " part " + std::string(part);
  return out;
}

}  // namespace

CpuInfo ParseCpuInfo(std::string_view text) {
  CpuInfo info;
  // Candidates for the model, best first.
  std::string_view model_name, hardware, processor, cpu, uarch, implementer, part;
  ForEachLine(text, [&](std::string_view line) {
    std::string_view key, value;
    if (!SplitKeyValue(line, key, value)) return;
    auto first = [&](std::string_view& slot) {
      if (slot.empty()) slot = value;
    };
    if (key == "processor") {
      ++info.cores;
    } else if (key == "model name") {
      first(model_name);
    } else if (key == "Hardware") {
      first(hardware);
    } else if (key == "Processor" && !IsNumber(value)) {
      first(processor);
    } else if (key == "cpu") {
      first(cpu);
    } else if (key == "uarch") {
      first(uarch);
    } else if (key == "CPU implementer") {
      first(implementer);
    } else if (key == "CPU part") {
      first(part);
    }
  });
  for (std::string_view v : {model_name, hardware, processor, cpu, uarch}) {
    if (!v.empty()) {
      info.model = v;
      return info;
    }
  }
  if (!implementer.empty() || !part.empty()) {
    info.model = ArmName(implementer, part);
  } else {
    info.model = "unknown";
  }
  return info;
}

Result<CpuTimes> ParseProcStat(std::string_view text) {
  std::string_view line;
  bool found = false;
  ForEachLine(text, [&](std::string_view l) {
    if (!found && l.substr(0, 4) == "cpu ") {
      line = l.substr(4);
      found = true;
    }
  });
  if (!found) return InvalidArgument("/proc/stat has no \"cpu\" line");
  CpuTimes t;
  uint64_t* fields[] = {&t.user,   &t.nice, &t.system,  &t.idle,
                        &t.iowait, &t.irq,  &t.softirq, &t.steal};
  int n = 0;
  for (uint64_t* f : fields) {
    if (!NextNumber(line, *f)) break;
    ++n;
  }
  if (n < 4) return InvalidArgument("/proc/stat \"cpu\" line has fewer than 4 numbers");
  return t;
}

double CpuUsagePercent(const CpuTimes& prev, const CpuTimes& now) {
  // A counter that went backwards (iowait can) counts as no time.
  auto d = [](uint64_t a, uint64_t b) { return b > a ? b - a : 0; };
  uint64_t idle = d(prev.idle, now.idle) + d(prev.iowait, now.iowait);
  uint64_t busy = d(prev.user, now.user) + d(prev.nice, now.nice) + d(prev.system, now.system) +
                  d(prev.irq, now.irq) + d(prev.softirq, now.softirq) + d(prev.steal, now.steal);
  uint64_t total = idle + busy;
  if (total == 0) return 0;
  double pct = 100.0 * static_cast<double>(busy) / static_cast<double>(total);
  return std::clamp(pct, 0.0, 100.0);
}

Result<MemInfo> ParseMemInfo(std::string_view text) {
  struct Field {
    std::string_view key;
    uint64_t value = 0;
    bool found = false;
  };
  Field fields[] = {{"MemTotal"}, {"MemAvailable"}, {"MemFree"}, {"Buffers"}, {"Cached"}};
  ForEachLine(text, [&](std::string_view line) {
    std::string_view key, value;
    if (!SplitKeyValue(line, key, value)) return;
    for (Field& f : fields) {
      if (!f.found && f.key == key) f.found = NextNumber(value, f.value);
    }
  });
  const Field& total = fields[0];
  const Field& available = fields[1];
  if (!total.found) return InvalidArgument("/proc/meminfo has no MemTotal");
  uint64_t avail_kb = 0;
  if (available.found) {
    avail_kb = available.value;
  } else if (fields[2].found) {
    avail_kb = fields[2].value + fields[3].value + fields[4].value;
  } else {
    return InvalidArgument("/proc/meminfo has neither MemAvailable nor MemFree");
  }
  // Values beyond 2^63 kB are garbage, not memory: cap them.
  constexpr uint64_t kMax = uint64_t{1} << 62;
  uint64_t total_kb = std::min(total.value, kMax);
  avail_kb = std::min(avail_kb, kMax);
  uint64_t used_kb = total_kb > avail_kb ? total_kb - avail_kb : 0;
  MemInfo m;
  m.total = static_cast<int64_t>(total_kb / 1024);
  m.used = static_cast<int64_t>(used_kb / 1024);
  return m;
}

Result<DiskInfo> DiskUsage(const std::string& path) {
  struct statvfs st {};
  if (::statvfs(path.c_str(), &st) != 0) {
    return Internal("cannot statvfs " + path + ": " + std::strerror(errno));
  }
  auto gib = [&](uint64_t blocks) -> int64_t {
    uint64_t bytes = 0;
    if (__builtin_mul_overflow(blocks, uint64_t{st.f_frsize}, &bytes)) {
      return static_cast<int64_t>(static_cast<long double>(blocks) *
                                  static_cast<long double>(st.f_frsize) / (1 << 30));
    }
    return static_cast<int64_t>(bytes >> 30);
  };
  uint64_t blocks = st.f_blocks;
  uint64_t free_blocks = std::min<uint64_t>(st.f_bfree, blocks);
  DiskInfo d;
  d.total = gib(blocks);
  d.used = gib(blocks - free_blocks);
  return d;
}

Status ReadProcFile(const std::string& path, std::string& out, size_t max_bytes) {
  out.clear();
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return NotFound("no such file: " + path);
    return Internal("cannot open " + path + ": " + std::strerror(errno));
  }
  if (out.capacity() < 4096) out.reserve(4096);
  size_t len = 0;
  for (;;) {
    if (len == out.capacity()) out.reserve(len * 2);
    out.resize(out.capacity());
    ssize_t n = ::read(fd, out.data() + len, out.size() - len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int err = errno;
      ::close(fd);
      out.clear();
      return Internal("cannot read " + path + ": " + std::strerror(err));
    }
    if (n == 0) break;
    len += static_cast<size_t>(n);
    if (len > max_bytes) {
      ::close(fd);
      out.clear();
      return Error{ErrorCode::kTooLarge, path + " is larger than expected"};
    }
  }
  ::close(fd);
  out.resize(len);
  return Status::Ok();
}

}  // namespace gpuhub::agent
