// Output helpers of the gpuhub CLI: tables fitted to a terminal width, and
// ANSI colour that is used only when enabled (a terminal, NO_COLOR unset).
// Plain values; thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace gpuhub::cli {

struct Cell {
  std::string text;
  std::string color;  // an ANSI SGR code such as "32", or empty
};

class Table {
 public:
  explicit Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}
  void Add(std::vector<Cell> row) { rows_.push_back(std::move(row)); }

  // Columns separated by two spaces, each as wide as its widest cell. When
  // the whole is wider than `width` (0: no limit), the widest column is cut
  // (cells and header ending in "…") one character at a time until it fits
  // or every column is down to 8 characters.
  // Colour codes are emitted only when `color`.
  std::string Render(size_t width, bool color) const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<Cell>> rows_;
};

// Display width of UTF-8 text (code points; no wide-character handling).
size_t DisplayWidth(std::string_view text);
// `text` cut to `width` code points, the last one "…" when cut.
std::string Truncate(std::string_view text, size_t width);
// `text` wrapped in the SGR `code` when `color` and code is not empty.
std::string Paint(std::string_view text, std::string_view code, bool color);

}  // namespace gpuhub::cli
