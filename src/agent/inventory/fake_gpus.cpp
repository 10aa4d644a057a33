#include "agent/inventory/fake_gpus.hpp"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "common/file_util.hpp"

namespace gpuhub::agent {
namespace {

using nlohmann::json;

constexpr size_t kMaxFileBytes = 1 << 20;

// FNV-1a, 32 bits, as 8 hex digits.
std::string HashHex(std::string_view s) {
  uint32_t h = 2166136261u;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 16777619u;
  }
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08x", h);
  return buf;
}

// A non-negative integer at most `max`; `what` names it in the message.
Status ReadInt(const json& v, const std::string& what, int64_t max, int64_t& out) {
  if (const auto* u = v.get_ptr<const json::number_unsigned_t*>()) {
    if (*u <= static_cast<json::number_unsigned_t>(max)) {
      out = static_cast<int64_t>(*u);
      return Status::Ok();
    }
  } else if (const auto* i = v.get_ptr<const json::number_integer_t*>()) {
    if (*i >= 0 && *i <= max) {
      out = *i;
      return Status::Ok();
    }
  }
  return InvalidArgument(what + " must be an integer from 0 to " + std::to_string(max));
}

}  // namespace

FakeGpuSource::FakeGpuSource(std::string path) : path_(std::move(path)) {}

std::string FakeGpuSource::Describe() const { return "fake GPUs from " + path_; }

Result<std::vector<proto::Gpu>> FakeGpuSource::Parse(std::string_view text,
                                                     const std::string& path) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return InvalidArgument(path + ": not valid JSON");
  if (!j.is_array()) return InvalidArgument(path + ": must be a JSON array of GPU objects");
  const std::string hash = HashHex(path);
  constexpr int64_t kMax64 = std::numeric_limits<int64_t>::max();
  constexpr int64_t kMaxInt = std::numeric_limits<int>::max();
  std::vector<proto::Gpu> gpus;
  gpus.reserve(j.size());
  for (size_t i = 0; i < j.size(); ++i) {
    const json& o = j[i];
    const std::string at = path + ": GPU " + std::to_string(i);
    if (!o.is_object()) return InvalidArgument(at + " must be a JSON object");
    for (const auto& item : o.items()) {
      static constexpr std::string_view kKnown[] = {
          "name", "memory_total", "uuid", "memory_used", "utilization", "temperature", "processes"};
      if (std::find(std::begin(kKnown), std::end(kKnown), item.key()) == std::end(kKnown)) {
        return InvalidArgument(at + ": unknown field \"" + item.key().substr(0, 64) + "\"");
      }
    }
    proto::Gpu g;
    g.index = static_cast<int>(i);
    auto field = [&](const char* key) -> const json* {
      auto it = o.find(key);
      return it == o.end() ? nullptr : &*it;
    };
    auto name = [&](const char* key) { return at + " field \"" + key + "\""; };
    auto read_string = [&](const char* key, std::string& out) -> Status {
      const json* v = field(key);
      const auto* s = v != nullptr ? v->get_ptr<const json::string_t*>() : nullptr;
      if (s == nullptr || s->empty())
        return InvalidArgument(name(key) + " must be a non-empty string");
      out = *s;
      return Status::Ok();
    };
    auto read_int = [&](const char* key, int64_t max, int64_t& out) -> Status {
      const json* v = field(key);
      if (v == nullptr) return Status::Ok();  // optional: keeps its default
      return ReadInt(*v, name(key), max, out);
    };

    if (field("name") == nullptr) return InvalidArgument(name("name") + " is missing");
    if (Status s = read_string("name", g.name); !s.ok()) return s.error();
    if (field("memory_total") == nullptr) {
      return InvalidArgument(name("memory_total") + " is missing");
    }
    if (Status s = read_int("memory_total", kMax64, g.memory_total); !s.ok()) return s.error();
    if (field("uuid") != nullptr) {
      if (Status s = read_string("uuid", g.uuid); !s.ok()) return s.error();
    } else {
      g.uuid = "GPU-fake-" + std::to_string(i) + "-" + hash;
    }
    if (Status s = read_int("memory_used", g.memory_total, g.memory_used); !s.ok()) {
      return InvalidArgument(s.error().message + " (memory_total)");
    }
    int64_t v = 0;
    if (Status s = read_int("utilization", 100, v); !s.ok()) return s.error();
    g.utilization = static_cast<int>(v);
    v = 0;
    if (Status s = read_int("temperature", kMaxInt, v); !s.ok()) return s.error();
    g.temperature = static_cast<int>(v);
    if (const json* p = field("processes")) {
      if (!p->is_array()) return InvalidArgument(name("processes") + " must be an array of PIDs");
      for (size_t k = 0; k < p->size(); ++k) {
        int64_t pid = 0;
        std::string what = at + " field \"processes[" + std::to_string(k) + "]\"";
        Status s = ReadInt((*p)[k], what, kMax64, pid);
        if (!s.ok()) return s.error();
        g.processes.push_back(pid);
      }
    }
    for (const proto::Gpu& other : gpus) {
      if (other.uuid == g.uuid) {
        return InvalidArgument(name("uuid") + " repeats the uuid of GPU " +
                               std::to_string(other.index));
      }
    }
    gpus.push_back(std::move(g));
  }
  return gpus;
}

Result<std::vector<proto::Gpu>> FakeGpuSource::Read() {
  struct stat st {};
  if (::stat(path_.c_str(), &st) != 0) {
    int err = errno;
    stamp_.reset();
    last_.reset();
    if (err == ENOENT) return NotFound("fake GPU file " + path_ + " does not exist");
    return Internal("cannot stat fake GPU file " + path_ + ": " + std::strerror(err));
  }
  Stamp now{st.st_dev, st.st_ino, st.st_size, st.st_mtim.tv_sec, st.st_mtim.tv_nsec};
  if (stamp_ && *stamp_ == now && last_) return *last_;

  auto text = ReadFile(path_, kMaxFileBytes);
  if (!text.ok()) {
    // Not cached: a file that vanished or grew between stat and read is
    // looked at again next time.
    stamp_.reset();
    last_.reset();
    return text.error();
  }
  ++parse_count_;
  stamp_ = now;
  last_ = Parse(*text, path_);
  return *last_;
}

}  // namespace gpuhub::agent
