// Plain request types of the container service, free of any I/O so the
// request decoders (and their fuzz target) can use them.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace gpuhub::containers {

struct CreateRequest {
  std::string machine_id;
  int64_t image_id = 0;
  std::vector<int> ports;           // container ports to publish
  std::optional<std::string> name;  // generated when absent
};

struct NewImage {
  std::string name;
  std::string image;
  std::string description;
};

}  // namespace gpuhub::containers
