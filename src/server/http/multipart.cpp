#include "server/http/multipart.hpp"

#include <cassert>
#include <utility>

namespace gpuhub::http {
namespace {

constexpr size_t kMaxBoundaryLength = 70;  // RFC 2046 section 5.1.1
constexpr std::string_view kCrlf = "\r\n";
constexpr std::string_view kDashes = "--";

Error Unsupported(std::string m) { return {ErrorCode::kUnsupported, std::move(m)}; }

// The bytes of `s` from `pos` on; empty (never out of range) past the end.
std::string_view Rest(std::string_view s, size_t pos) {
  return pos >= s.size() ? std::string_view() : s.substr(pos);
}

char AsciiLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

std::string ToLower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = AsciiLower(c);
  return out;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (AsciiLower(a[i]) != AsciiLower(b[i])) return false;
  }
  return true;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAlpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
bool IsOws(char c) { return c == ' ' || c == '\t'; }

// Control characters other than HTAB, which never belong in a header value.
bool IsCtl(char c) {
  const auto u = static_cast<unsigned char>(c);
  return (u < 0x20 && c != '\t') || u == 0x7f;
}

// RFC 7230 tchar.
bool IsTokenChar(char c) {
  constexpr std::string_view kSymbols = "!#$%&'*+-.^_`|~";
  return IsDigit(c) || IsAlpha(c) || kSymbols.find(c) != std::string_view::npos;
}

// RFC 2046 bcharsnospace.
bool IsBoundaryCharNoSpace(char c) {
  constexpr std::string_view kSymbols = "'()+_,-./:=?";
  return IsDigit(c) || IsAlpha(c) || kSymbols.find(c) != std::string_view::npos;
}

bool IsValidBoundary(std::string_view b) {
  if (b.empty() || b.size() > kMaxBoundaryLength || b.back() == ' ') return false;
  for (char c : b) {
    if (c != ' ' && !IsBoundaryCharNoSpace(c)) return false;
  }
  return true;
}

void SkipOws(std::string_view s, size_t& i) {
  while (i < s.size() && IsOws(s[i])) ++i;
}

std::string_view TrimOws(std::string_view s) {
  size_t b = 0;
  size_t e = s.size();
  while (b < e && IsOws(s[b])) ++b;
  while (e > b && IsOws(s[e - 1])) --e;
  return s.substr(b, e - b);
}

// Reads a token starting at `i`; empty when there is none.
std::string_view ReadToken(std::string_view s, size_t& i) {
  const size_t start = i;
  while (i < s.size() && IsTokenChar(s[i])) ++i;
  return s.substr(start, i - start);
}

struct Param {
  std::string name;  // lower case
  std::string value;
};

// Parses `*( OWS ";" OWS [ token "=" ( token / quoted-string ) ] ) OWS`, the
// parameters after a media type or disposition type. Empty parameters (";;")
// are skipped. An unquoted value runs to the next OWS, ';' or end, so that
// boundaries with characters outside tchar are read even when unquoted. In a
// quoted string a backslash escapes only '"' and '\\' and is literal
// otherwise, which keeps unescaped Windows paths in filenames intact.
std::optional<std::vector<Param>> ParseParams(std::string_view s) {
  std::vector<Param> out;
  size_t i = 0;
  while (true) {
    SkipOws(s, i);
    if (i == s.size()) return out;
    if (s[i] != ';') return std::nullopt;
    ++i;
    SkipOws(s, i);
    if (i == s.size() || s[i] == ';') continue;
    Param p;
    const std::string_view name = ReadToken(s, i);
    if (name.empty() || i == s.size() || s[i] != '=') return std::nullopt;
    p.name = ToLower(name);
    ++i;
    if (i < s.size() && s[i] == '"') {
      ++i;
      bool closed = false;
      while (i < s.size()) {
        const char c = s[i];
        if (c == '"') {
          ++i;
          closed = true;
          break;
        }
        if (c == '\\' && i + 1 < s.size() && (s[i + 1] == '"' || s[i + 1] == '\\')) {
          p.value += s[i + 1];
          i += 2;
          continue;
        }
        if (IsCtl(c)) return std::nullopt;
        p.value += c;
        ++i;
      }
      if (!closed) return std::nullopt;
    } else {
      const size_t start = i;
      while (i < s.size() && !IsOws(s[i]) && s[i] != ';' && s[i] != '"' && !IsCtl(s[i])) ++i;
      if (i == start) return std::nullopt;
      p.value = std::string(s.substr(start, i - start));
    }
    out.push_back(std::move(p));
  }
}

int HexValue(char c) {
  if (IsDigit(c)) return c - '0';
  const char l = AsciiLower(c);
  if (l >= 'a' && l <= 'f') return l - 'a' + 10;
  return -1;
}

// Decodes an RFC 5987 ext-value in UTF-8 ("UTF-8'lang'%E2%82%AC.png");
// nullopt for another charset, a malformed value or encoded control bytes.
std::optional<std::string> DecodeExtValue(std::string_view v) {
  const size_t q1 = v.find('\'');
  if (q1 == std::string_view::npos) return std::nullopt;
  const size_t q2 = v.find('\'', q1 + 1);
  if (q2 == std::string_view::npos) return std::nullopt;
  if (!EqualsIgnoreCase(v.substr(0, q1), "utf-8")) return std::nullopt;
  std::string out;
  for (size_t i = q2 + 1; i < v.size(); ++i) {
    if (v[i] != '%') {
      out += v[i];
      continue;
    }
    if (i + 2 >= v.size()) return std::nullopt;
    const int hi = HexValue(v[i + 1]);
    const int lo = HexValue(v[i + 2]);
    if (hi < 0 || lo < 0) return std::nullopt;
    const auto byte = static_cast<char>(hi * 16 + lo);
    if (IsCtl(byte) || byte == '\t') return std::nullopt;  // no control bytes in a name
    out += byte;
    i += 2;
  }
  return out;
}

// True when a dash-boundary that ends just before `after` is a delimiter:
// followed by "--" (the close delimiter) or by transport padding and CRLF.
bool EndsDelimiter(std::string_view body, size_t after) {
  if (Rest(body, after).starts_with(kDashes)) return true;
  SkipOws(body, after);
  return Rest(body, after).starts_with(kCrlf);
}

// The offset of the next delimiter ("\r\n--boundary" ending as EndsDelimiter
// says) at or after `from`, or npos. `delimiter` holds CR only in its first
// byte, so a failed candidate cannot overlap the next one: the search resumes
// past it and the whole scan is linear.
size_t FindDelimiter(std::string_view body, size_t from, std::string_view delimiter) {
  size_t i = from;
  while ((i = body.find(delimiter, i)) != std::string_view::npos) {
    const size_t after = i + delimiter.size();
    if (EndsDelimiter(body, after)) return i;
    i = after;
  }
  return std::string_view::npos;
}

struct Header {
  std::string name;  // lower case
  std::string value;
};

// Splits a header section (lines each ending in CRLF, no blank line) into
// fields, unfolding obsolete continuation lines.
std::optional<std::vector<Header>> ParseHeaderLines(std::string_view block) {
  std::vector<Header> out;
  size_t i = 0;
  while (i < block.size()) {
    const size_t eol = block.find(kCrlf, i);
    if (eol == std::string_view::npos) return std::nullopt;
    const std::string_view line = block.substr(i, eol - i);
    i = eol + kCrlf.size();
    if (line.empty()) return std::nullopt;
    if (IsOws(line.front())) {
      if (out.empty()) return std::nullopt;
      out.back().value += ' ';
      out.back().value += TrimOws(line);
      continue;
    }
    const size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) return std::nullopt;
    const std::string_view name = line.substr(0, colon);
    for (char c : name) {
      if (!IsTokenChar(c)) return std::nullopt;
    }
    out.push_back({ToLower(name), std::string(TrimOws(line.substr(colon + 1)))});
  }
  for (const Header& h : out) {
    for (char c : h.value) {
      if (IsCtl(c)) return std::nullopt;
    }
  }
  return out;
}

// Fills name and filename of `part` from a Content-Disposition value.
Status ApplyDisposition(std::string_view value, MultipartPart& part) {
  size_t i = 0;
  const std::string_view type = ReadToken(value, i);
  if (!EqualsIgnoreCase(type, "form-data")) {
    return InvalidArgument("Multipart part lacks Content-Disposition form-data name");
  }
  const auto params = ParseParams(value.substr(i));
  if (!params) return InvalidArgument("Malformed Content-Disposition in multipart part");
  bool has_name = false;
  bool has_ext_filename = false;
  std::optional<std::string> ext_filename;
  for (const Param& p : *params) {
    if (p.name == "name") {
      if (has_name) return InvalidArgument("Duplicate name in multipart Content-Disposition");
      has_name = true;
      part.name = p.value;
    } else if (p.name == "filename") {
      if (part.filename) {
        return InvalidArgument("Duplicate filename in multipart Content-Disposition");
      }
      part.filename = p.value;
    } else if (p.name == "filename*") {
      if (has_ext_filename) {
        return InvalidArgument("Duplicate filename* in multipart Content-Disposition");
      }
      has_ext_filename = true;
      ext_filename = DecodeExtValue(p.value);
    }
  }
  if (!has_name) return InvalidArgument("Multipart part lacks Content-Disposition form-data name");
  if (!part.filename && ext_filename) part.filename = std::move(ext_filename);
  return Status::Ok();
}

// Builds a part from its header section and data.
Result<MultipartPart> MakePart(std::string_view header_block, std::string_view data) {
  const auto headers = ParseHeaderLines(header_block);
  if (!headers) return InvalidArgument("Malformed multipart part header");
  MultipartPart part;
  bool has_disposition = false;
  bool has_type = false;
  for (const Header& h : *headers) {
    if (h.name == "content-disposition") {
      if (has_disposition) {
        return InvalidArgument("Duplicate Content-Disposition in multipart part");
      }
      has_disposition = true;
      if (Status s = ApplyDisposition(h.value, part); !s.ok()) return s.error();
    } else if (h.name == "content-type") {
      if (has_type) return InvalidArgument("Duplicate Content-Type in multipart part");
      has_type = true;
      part.content_type = h.value;
    } else if (h.name == "content-transfer-encoding") {
      const std::string cte = ToLower(h.value);
      if (cte != "7bit" && cte != "8bit" && cte != "binary") {
        return InvalidArgument("Unsupported Content-Transfer-Encoding in multipart part");
      }
    }
  }
  if (!has_disposition) {
    return InvalidArgument("Multipart part lacks Content-Disposition form-data name");
  }
  if (part.content_type.empty()) part.content_type = "text/plain";
  part.data = std::string(data);
  return part;
}

}  // namespace

Result<std::string> MultipartBoundary(std::string_view content_type) {
  const std::string_view v = TrimOws(content_type);
  size_t i = 0;
  const std::string_view type = ReadToken(v, i);
  if (i == v.size() || v[i] != '/') return Unsupported("Body must be multipart/form-data");
  ++i;
  const std::string_view subtype = ReadToken(v, i);
  if (!EqualsIgnoreCase(type, "multipart") || !EqualsIgnoreCase(subtype, "form-data")) {
    return Unsupported("Body must be multipart/form-data");
  }
  const auto params = ParseParams(v.substr(i));
  if (!params) return InvalidArgument("Malformed Content-Type parameters");
  std::optional<std::string> boundary;
  for (const Param& p : *params) {
    if (p.name != "boundary") continue;
    if (boundary) return InvalidArgument("Duplicate multipart boundary");
    boundary = p.value;
  }
  if (!boundary) return InvalidArgument("Missing multipart boundary");
  if (!IsValidBoundary(*boundary)) return InvalidArgument("Invalid multipart boundary");
  return std::move(*boundary);
}

Result<std::vector<MultipartPart>> ParseMultipart(std::string_view body, std::string_view boundary,
                                                  const MultipartLimits& limits) {
  if (!IsValidBoundary(boundary)) return InvalidArgument("Invalid multipart boundary");
  if (body.empty()) return InvalidArgument("Empty multipart body");

  std::string delimiter_storage(kCrlf);
  delimiter_storage += kDashes;
  delimiter_storage += boundary;
  const std::string_view delimiter = delimiter_storage;  // CRLF "--" boundary
  const std::string_view dash_boundary = delimiter.substr(kCrlf.size());

  // pos: just past a dash-boundary that EndsDelimiter accepted.
  size_t pos = 0;
  if (body.starts_with(dash_boundary) && EndsDelimiter(body, dash_boundary.size())) {
    pos = dash_boundary.size();
  } else {
    const size_t at = FindDelimiter(body, 0, delimiter);  // after a preamble
    if (at == std::string_view::npos) {
      return InvalidArgument("Multipart body does not contain the boundary");
    }
    pos = at + delimiter.size();
  }

  std::vector<MultipartPart> parts;
  while (true) {
    if (Rest(body, pos).starts_with(kDashes)) return parts;  // close delimiter; epilogue ignored
    SkipOws(body, pos);
    assert(Rest(body, pos).starts_with(kCrlf));
    pos += kCrlf.size();
    if (parts.size() >= limits.max_parts) return InvalidArgument("Too many multipart parts");

    // Header section: up to the first blank line, at most max_header_bytes.
    const std::string_view rest = Rest(body, pos);
    std::string_view header_block;
    size_t data_start = 0;
    if (rest.starts_with(kCrlf)) {
      data_start = pos + kCrlf.size();  // no headers at all
    } else {
      // The blank line's CRLF CRLF must start within max_header_bytes - 2.
      const size_t window = limits.max_header_bytes < rest.size()
                                ? limits.max_header_bytes + kCrlf.size()
                                : rest.size();
      const size_t end = rest.substr(0, window).find("\r\n\r\n");
      if (end == std::string_view::npos) {
        return InvalidArgument(window >= rest.size() ? "Truncated multipart body"
                                                     : "Multipart part headers too large");
      }
      header_block = rest.substr(0, end + kCrlf.size());
      data_start = pos + end + 2 * kCrlf.size();
    }

    // Data: up to the next delimiter. A delimiter may also follow the header
    // section directly, sharing its CRLF with the blank line (an absent body).
    size_t data_end = 0;
    if (Rest(body, data_start).starts_with(dash_boundary) &&
        EndsDelimiter(body, data_start + dash_boundary.size())) {
      data_end = data_start;
      pos = data_start + dash_boundary.size();
    } else {
      data_end = FindDelimiter(body, data_start, delimiter);
      if (data_end == std::string_view::npos) return InvalidArgument("Truncated multipart body");
      pos = data_end + delimiter.size();
    }
    auto part = MakePart(header_block, body.substr(data_start, data_end - data_start));
    if (!part.ok()) return part.error();
    parts.push_back(std::move(part).value());
  }
}

}  // namespace gpuhub::http
