#include "cli/table.hpp"

#include <algorithm>

namespace gpuhub::cli {

namespace {
constexpr size_t kMinWidth = 8;
}  // namespace

size_t DisplayWidth(std::string_view text) {
  return static_cast<size_t>(std::count_if(text.begin(), text.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  }));
}

std::string Truncate(std::string_view text, size_t width) {
  if (DisplayWidth(text) <= width) return std::string(text);
  if (width == 0) return {};
  std::string out;
  size_t n = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    bool lead = (static_cast<unsigned char>(text[i]) & 0xC0) != 0x80;
    if (lead && ++n == width) break;
    out += text[i];
  }
  return out + "…";
}

std::string Paint(std::string_view text, std::string_view code, bool color) {
  if (!color || code.empty()) return std::string(text);
  return "\033[" + std::string(code) + "m" + std::string(text) + "\033[0m";
}

std::string Table::Render(size_t width, bool color) const {
  const size_t n = headers_.size();
  std::vector<size_t> w(n);
  for (size_t i = 0; i < n; ++i) w[i] = DisplayWidth(headers_[i]);
  for (const auto& row : rows_) {
    for (size_t i = 0; i < n && i < row.size(); ++i)
      w[i] = std::max(w[i], DisplayWidth(row[i].text));
  }
  auto total = [&] {
    size_t t = n ? 2 * (n - 1) : 0;
    for (size_t x : w) t += x;
    return t;
  };
  // Cut the widest column first, none below kMinWidth (or its natural width).
  std::vector<size_t> floor(n);
  for (size_t i = 0; i < n; ++i) floor[i] = std::min(w[i], kMinWidth);
  while (width > 0 && total() > width) {
    size_t widest = 0;
    for (size_t i = 1; i < n; ++i) {
      if (w[i] - floor[i] > 0 && (w[widest] == floor[widest] || w[i] > w[widest])) widest = i;
    }
    if (w[widest] <= floor[widest]) break;
    --w[widest];
  }
  std::string out;
  auto line = [&](const std::vector<Cell>& cells, bool header) {
    std::string text;
    for (size_t i = 0; i < n; ++i) {
      std::string cell = Truncate(i < cells.size() ? cells[i].text : "", w[i]);
      size_t pad = w[i] - DisplayWidth(cell);
      std::string code = header ? "1" : (i < cells.size() ? cells[i].color : "");
      text += Paint(cell, code, color);
      if (i + 1 < n) text += std::string(pad + 2, ' ');
    }
    out += text + "\n";
  };
  std::vector<Cell> head;
  for (const auto& h : headers_) head.push_back({h, ""});
  line(head, true);
  for (const auto& row : rows_) line(row, false);
  return out;
}

}  // namespace gpuhub::cli
