#include "proto/json_fields.hpp"

namespace gpuhub::proto::fields {

Error Bad(std::string_view path, std::string_view what) {
  return InvalidArgument(std::string(path) + " " + std::string(what));
}

std::string Join(std::string_view prefix, std::string_view key) {
  if (prefix.empty()) return std::string(key);
  return std::string(prefix) + "." + std::string(key);
}

const json* Find(const json& j, const char* key) {
  auto it = j.find(key);
  return it == j.end() ? nullptr : &*it;
}

Status ReadInt(const json& v, std::string_view path, int64_t max, int64_t& out) {
  if (const auto* u = v.get_ptr<const json::number_unsigned_t*>()) {
    if (*u > static_cast<json::number_unsigned_t>(max)) {
      return Bad(path, "must be at most " + std::to_string(max));
    }
    out = static_cast<int64_t>(*u);
    return Status::Ok();
  }
  if (const auto* i = v.get_ptr<const json::number_integer_t*>()) {
    if (*i < 0) return Bad(path, "must not be negative");
    if (*i > max) return Bad(path, "must be at most " + std::to_string(max));
    out = *i;
    return Status::Ok();
  }
  return Bad(path, "must be a non-negative integer");
}

Status GetInt64(const json& obj, const char* key, std::string_view prefix, int64_t max,
                int64_t& out) {
  std::string path = Join(prefix, key);
  const json* v = Find(obj, key);
  if (v == nullptr) return Bad(path, "is missing");
  return ReadInt(*v, path, max, out);
}

Status GetInt(const json& obj, const char* key, std::string_view prefix, int max, int& out) {
  int64_t v = 0;
  if (Status s = GetInt64(obj, key, prefix, max, v); !s.ok()) return s;
  out = static_cast<int>(v);
  return Status::Ok();
}

Status GetString(const json& obj, const char* key, std::string_view prefix, std::string& out) {
  std::string path = Join(prefix, key);
  const json* v = Find(obj, key);
  if (v == nullptr) return Bad(path, "is missing");
  const auto* s = v->get_ptr<const json::string_t*>();
  if (s == nullptr) return Bad(path, "must be a string");
  out = *s;
  return Status::Ok();
}

const json* GetObject(const json& obj, const char* key, std::string_view prefix, Status& status) {
  const json* v = Find(obj, key);
  if (v == nullptr) {
    status = Bad(Join(prefix, key), "is missing");
  } else if (!v->is_object()) {
    status = Bad(Join(prefix, key), "must be an object");
    v = nullptr;
  }
  return v;
}

}  // namespace gpuhub::proto::fields
