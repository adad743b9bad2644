// The native log lines (csrc/log.h): text lines that a client's text cannot break, and JSON
// lines that a strict reader of JSON objects of strings parses whatever bytes the message
// holds. (Not protobuf's JSON parser: its Struct, built inside the system library, crashes
// header code compiled under ThreadSanitizer.)
#include "log.h"

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "utf8.h"

namespace engine {
namespace {

// UTF-8 encoding of a code point below U+10000 (enough for the \u escapes the writer uses).
std::string Utf8(unsigned code) {
  std::string out;
  if (code < 0x80) {
    out += static_cast<char>(code);
  } else if (code < 0x800) {
    out += static_cast<char>(0xc0 | (code >> 6));
    out += static_cast<char>(0x80 | (code & 0x3f));
  } else {
    out += static_cast<char>(0xe0 | (code >> 12));
    out += static_cast<char>(0x80 | ((code >> 6) & 0x3f));
    out += static_cast<char>(0x80 | (code & 0x3f));
  }
  return out;
}

// A flat JSON object of string values, strictly (RFC 8259 strings: no raw control characters,
// only the standard escapes); nullopt for anything else.
std::optional<std::map<std::string, std::string>> ParseFlatJson(std::string_view json) {
  size_t i = 0;
  auto skip_spaces = [&] { while (i < json.size() && json[i] == ' ') ++i; };
  auto read_string = [&](std::string* out) {
    if (i >= json.size() || json[i++] != '"') return false;
    while (i < json.size()) {
      const auto c = static_cast<unsigned char>(json[i++]);
      if (c == '"') return true;
      if (c < 0x20) return false;
      if (c != '\\') {
        *out += static_cast<char>(c);
        continue;
      }
      if (i >= json.size()) return false;
      const char e = json[i++];
      static const std::map<char, char> kSimple = {{'"', '"'}, {'\\', '\\'}, {'/', '/'},
                                                   {'b', '\b'}, {'f', '\f'}, {'n', '\n'},
                                                   {'r', '\r'}, {'t', '\t'}};
      if (const auto it = kSimple.find(e); it != kSimple.end()) {
        *out += it->second;
      } else if (e == 'u' && i + 4 <= json.size()) {
        *out += Utf8(static_cast<unsigned>(std::stoul(std::string(json.substr(i, 4)), nullptr, 16)));
        i += 4;
      } else {
        return false;
      }
    }
    return false;
  };
  std::map<std::string, std::string> fields;
  if (json.empty() || json[i++] != '{') return std::nullopt;
  while (true) {
    skip_spaces();
    std::string key;
    std::string value;
    if (!read_string(&key)) return std::nullopt;
    skip_spaces();
    if (i >= json.size() || json[i++] != ':') return std::nullopt;
    skip_spaces();
    if (!read_string(&value) || !fields.emplace(key, value).second) return std::nullopt;
    skip_spaces();
    if (i < json.size() && json[i] == ',') {
      ++i;
      continue;
    }
    if (i + 1 == json.size() && json[i] == '}') return fields;
    return std::nullopt;
  }
}

TEST(ParseFlatJson, IsStrict) {  // the reader the JSON test relies on refuses bad JSON
  EXPECT_TRUE(ParseFlatJson(R"({"a": "b\n\u00e9"})").has_value());
  EXPECT_EQ((*ParseFlatJson(R"({"a": "b\n\u00e9"})"))["a"], "b\n\xc3\xa9");
  EXPECT_FALSE(ParseFlatJson("{\"a\": \"b\nc\"}").has_value());  // raw line break
  EXPECT_FALSE(ParseFlatJson(R"({"a": "b"} x)").has_value());
  EXPECT_FALSE(ParseFlatJson(R"({"a": "b\q"})").has_value());
  EXPECT_FALSE(ParseFlatJson(R"({"a": "b", "a": "c"})").has_value());
}

TEST(EscapeForLog, KeepsTextAndEscapesWhatCouldBreakALine) {
  EXPECT_EQ(EscapeForLog("req-1 (ok)"), "req-1 (ok)");
  EXPECT_EQ(EscapeForLog("a\nERROR engine forged"), "a\\x0aERROR engine forged");
  EXPECT_EQ(EscapeForLog(std::string("\r\0\x7f\\", 4)), "\\x0d\\x00\\x7f\\x5c");
  EXPECT_EQ(EscapeForLog("caf\xc3\xa9"), "caf\xc3\xa9");  // UTF-8 stays readable
  EXPECT_EQ(EscapeForLog(std::string(1000, 'x')).size(), 1000u);  // never cut
}

TEST(JsonLogLine, IsOneValidJsonObjectWhateverTheTextHolds) {
  const std::string message = std::string("bad \"quote\" \\ line\nbreak caf\xc3\xa9 \xff\xc3 ") +
                              std::string(1, '\0') + "end";
  const std::string line =
      JsonLogLine("2026-11-28T04:04:29.644Z", "ERROR", "engine.server.core", message, "id\r\n7");
  EXPECT_EQ(line.find('\n'), std::string::npos);
  EXPECT_TRUE(IsUtf8(line));
  const auto parsed = ParseFlatJson(line);
  ASSERT_TRUE(parsed.has_value()) << line;
  std::map<std::string, std::string> f = *parsed;
  EXPECT_EQ(f.size(), 5u);
  EXPECT_EQ(f["time"], "2026-11-28T04:04:29.644Z");
  EXPECT_EQ(f["level"], "ERROR");
  EXPECT_EQ(f["logger"], "engine.server.core");
  // Valid UTF-8 is kept; stray bytes become U+FFFD; control characters survive as escapes.
  EXPECT_EQ(f["message"], std::string("bad \"quote\" \\ line\nbreak caf\xc3\xa9 \xef\xbf\xbd\xef\xbf\xbd ") +
                              std::string(1, '\0') + "end");
  EXPECT_EQ(f["request_id"], "id\r\n7");
  const auto bare = ParseFlatJson(JsonLogLine("t", "WARNING", "onnxruntime.x", "m", ""));
  ASSERT_TRUE(bare.has_value());
  EXPECT_EQ(bare->at("level"), "WARNING");
  EXPECT_EQ(bare->at("request_id"), "-");
}

}  // namespace
}  // namespace engine
