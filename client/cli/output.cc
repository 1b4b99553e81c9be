#include "client/cli/output.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace cowdb::cli {

ExitCode ExitCodeFor(const absl::Status& s) {
  switch (s.code()) {
    case absl::StatusCode::kOk: return kOk;
    case absl::StatusCode::kNotFound:
    case absl::StatusCode::kOutOfRange: return kNotFound;
    case absl::StatusCode::kInvalidArgument: return kBadInput;
    case absl::StatusCode::kAborted: return kConflict;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded: return kUnreachable;
    case absl::StatusCode::kUnauthenticated:
    case absl::StatusCode::kPermissionDenied: return kUnauthorized;
    default: return kFailed;
  }
}

bool IsValidUtf8(std::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    const uint8_t c = s[i];
    int n;  // continuation bytes
    if (c < 0x80) {
      n = 0;
    } else if ((c >> 5) == 0x6) {
      n = 1;
    } else if ((c >> 4) == 0xe) {
      n = 2;
    } else if ((c >> 3) == 0x1e) {
      n = 3;
    } else {
      return false;
    }
    if (i + n >= s.size()) return false;
    uint32_t cp = n == 0 ? c : c & (0x3f >> n);
    for (int k = 1; k <= n; ++k) {
      const uint8_t cc = s[i + k];
      if ((cc >> 6) != 0x2) return false;
      cp = (cp << 6) | (cc & 0x3f);
    }
    // Overlong forms, surrogates and values past U+10FFFF are invalid.
    static constexpr uint32_t kMin[] = {0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return false;
    i += n + 1;
  }
  return true;
}

std::string Printable(std::string_view bytes) {
  bool text = IsValidUtf8(bytes);
  std::string out;
  for (char ch : bytes) {
    uint8_t c = ch;
    if (c == '\\') {
      out += "\\\\";
    } else if ((c >= 0x20 && c < 0x7f) || (text && c >= 0x80)) {
      out += ch;
    } else {
      out += absl::StrFormat("\\x%02x", c);
    }
  }
  return out;
}

std::string PrintableValue(std::string_view bytes) {
  if (!IsValidUtf8(bytes)) return Printable(bytes);
  for (char ch : bytes) {
    const uint8_t c = ch;
    if ((c < 0x20 && c != '\n' && c != '\t' && c != '\r') || c == 0x7f) return Printable(bytes);
  }
  return std::string(bytes);
}

std::string JsonString(std::string_view s) {
  std::string out = "\"";
  for (char ch : s) {
    uint8_t c = ch;
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\t': out += "\\t"; break;
      case '\r': out += "\\r"; break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out += absl::StrFormat("\\u%04x", c);
        } else {
          out += ch;
        }
    }
  }
  return out + "\"";
}

std::string JsonBytesField(std::string_view name, std::string_view bytes) {
  if (IsValidUtf8(bytes)) return absl::StrCat(JsonString(name), ":", JsonString(bytes));
  return absl::StrCat(JsonString(absl::StrCat(absl::string_view(name.data(), name.size()),
                                              "_base64")),
                      ":",
                      JsonString(absl::Base64Escape(std::string(bytes))));
}

void Table::Print(std::ostream& out) const {
  std::vector<size_t> width(header_.size());
  for (size_t c = 0; c < header_.size(); ++c) width[c] = header_[c].size();
  for (const auto& row : rows_) {
    for (size_t c = 0; c < row.size() && c < width.size(); ++c) {
      width[c] = std::max(width[c], row[c].size());
    }
  }
  auto line = [&](const std::vector<std::string>& row) {
    std::string s;
    for (size_t c = 0; c < row.size(); ++c) {
      s += row[c];
      if (c + 1 < row.size()) s += std::string(width[c] - row[c].size() + 2, ' ');
    }
    out << s << "\n";
  };
  line(header_);
  for (const auto& row : rows_) line(row);
}

}  // namespace cowdb::cli
