// Reading typed fields out of JSON messages with errors that name the field
// path ("gpu[0].utilization must be at most 100", "data.id is missing").
// Internal to gpuhub_proto. Pure functions: thread-safe.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "common/result.hpp"

namespace gpuhub::proto::fields {

using nlohmann::json;

// InvalidArgument "<path> <what>".
Error Bad(std::string_view path, std::string_view what);
// "prefix.key", or "key" for an empty prefix.
std::string Join(std::string_view prefix, std::string_view key);
// `j[key]` for an object `j`, or nullptr when absent.
const json* Find(const json& j, const char* key);
// A non-negative integer no larger than `max`, from a JSON number that is not a float.
Status ReadInt(const json& v, std::string_view path, int64_t max, int64_t& out);
// Required fields of `obj`; the error names prefix.key.
Status GetInt64(const json& obj, const char* key, std::string_view prefix, int64_t max,
                int64_t& out);
Status GetInt(const json& obj, const char* key, std::string_view prefix, int max, int& out);
Status GetString(const json& obj, const char* key, std::string_view prefix, std::string& out);
// The object at obj[key], or nullptr with `status` set to the error.
const json* GetObject(const json& obj, const char* key, std::string_view prefix, Status& status);

}  // namespace gpuhub::proto::fields
