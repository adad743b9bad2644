#include "log.h"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>

#include "utf8.h"

namespace engine {
namespace {

std::atomic<bool> json_logs{false};

// Now with milliseconds, as Python's logging writes it: ISO 8601 in UTC for JSON lines
// ("2026-11-28T04:04:29.644Z"), local "asctime" for text lines ("2026-11-28 04:04:29,644").
std::string TimeStamp(bool json) {
  const auto now = std::chrono::system_clock::now();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()) % 1000;
  std::tm parts{};
  if (json) {
    gmtime_r(&seconds, &parts);
  } else {
    localtime_r(&seconds, &parts);
  }
  char text[40];
  const size_t n =
      std::strftime(text, sizeof(text), json ? "%Y-%m-%dT%H:%M:%S" : "%Y-%m-%d %H:%M:%S", &parts);
  std::snprintf(text + n, sizeof(text) - n, json ? ".%03dZ" : ",%03d", static_cast<int>(ms.count()));
  return text;
}

// A JSON string literal that is valid UTF-8 whatever `text` holds: well-formed UTF-8 is kept
// (as the Python formatter keeps it), any other byte >= 0x80 becomes U+FFFD.
std::string JsonQuote(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out = "\"";
  for (size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += text[i];
    } else if (c < 0x20 || c == 0x7f) {
      out += "\\u00";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else if (c < 0x80) {
      out += text[i];
    } else if (const size_t n = Utf8SequenceAt(text, i); n > 1) {
      out.append(text.substr(i, n));
      i += n - 1;
    } else {
      out += "\\ufffd";
    }
  }
  return out + "\"";
}

}  // namespace

void SetJsonLogs(bool json) { json_logs.store(json, std::memory_order_relaxed); }

std::string JsonLogLine(std::string_view time, std::string_view level, std::string_view logger,
                        std::string_view message, std::string_view request_id) {
  return "{\"time\": " + JsonQuote(time) + ", \"level\": " + JsonQuote(level) +
         ", \"logger\": " + JsonQuote(logger) + ", \"message\": " + JsonQuote(message) +
         ", \"request_id\": " + JsonQuote(request_id.empty() ? "-" : request_id) + "}";
}

std::string EscapeForLog(std::string_view text) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(text.size());
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c >= 0x20 && c != 0x7f && c != '\\') {
      out += ch;
    } else {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    }
  }
  return out;
}

void LogLine(std::string_view level, std::string_view logger, std::string_view message,
             std::string_view request_id) {
  std::string line;
  if (json_logs.load(std::memory_order_relaxed)) {
    line = JsonLogLine(TimeStamp(true), level, logger, message, request_id);
  } else {  // the launcher's text format: "%(asctime)s %(levelname)s %(name)s [%(request_id)s] ..."
    line = TimeStamp(false) + " " + std::string(level) + " " + std::string(logger) + " [" +
           (request_id.empty() ? std::string("-") : EscapeForLog(request_id)) + "] " +
           EscapeForLog(message);
  }
  line += '\n';
  // One write per line, so lines from several threads do not interleave.
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace engine
