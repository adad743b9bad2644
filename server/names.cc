#include "names.h"

namespace engine::server {
namespace {

bool IsFirstChar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

bool IsRestChar(char c) { return IsFirstChar(c) || c == '-' || c == '.'; }

}  // namespace

std::string ModelNameProblem(std::string_view name) {
  // Specific rules first so the message says why; the character classes are the final word.
  if (name.empty()) return "must not be empty";
  if (name.find('\0') != std::string_view::npos) return "must not contain a NUL character";
  if (name.find_first_of("/\\") != std::string_view::npos) {
    return "must not contain a path separator ('/' or '\\')";
  }
  if (name.find('%') != std::string_view::npos) {
    return "must not contain '%' (URL-encoded characters such as %2e or %2f are refused)";
  }
  if (name.front() == '.') return "must not start with '.'";
  if (name.front() == '-') return "must not start with '-'";
  if (name.size() > kMaxModelNameLength) {
    return "must be at most " + std::to_string(kMaxModelNameLength) + " characters; was " +
           std::to_string(name.size());
  }
  if (!IsFirstChar(name.front())) return "must start with an ASCII letter, digit or '_'";
  for (char c : name) {
    if (!IsRestChar(c)) {
      return "character " + QuoteForMessage(std::string_view(&c, 1)) +
             " is not allowed; use ASCII letters, digits, '_', '-' and '.'";
    }
  }
  return "";
}

bool ParseModelVersion(std::string_view text, int64_t* version) {
  if (text.empty()) {
    *version = 0;
    return true;
  }
  if (text.size() > 10 || text.front() < '1' || text.front() > '9') return false;
  int64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    value = value * 10 + (c - '0');
  }
  if (value > kMaxModelVersion) return false;
  *version = value;
  return true;
}

std::string QuoteForMessage(std::string_view text) {
  static constexpr size_t kMaxShown = 80;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "'";
  for (size_t i = 0; i < text.size() && i < kMaxShown; ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c >= 0x20 && c < 0x7f && c != '\'' && c != '\\') {
      out += static_cast<char>(c);
    } else {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    }
  }
  out += text.size() > kMaxShown ? "'..." : "'";
  return out;
}

std::string Named(std::string_view kind, std::string_view name) {
  return std::string(kind) + " " + QuoteForMessage(name);
}

}  // namespace engine::server
