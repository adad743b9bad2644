// The native log lines (csrc/log.h): text lines that a client's text cannot break, and JSON
// lines that parse (with protobuf's JSON parser, which the server tests already link) whatever
// bytes the message holds.
#include "log.h"

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <string>

namespace engine {
namespace {

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
  google::protobuf::Struct parsed;
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(line, &parsed).ok()) << line;
  const auto& f = parsed.fields();
  EXPECT_EQ(f.at("time").string_value(), "2026-11-28T04:04:29.644Z");
  EXPECT_EQ(f.at("level").string_value(), "ERROR");
  EXPECT_EQ(f.at("logger").string_value(), "engine.server.core");
  // Valid UTF-8 is kept; stray bytes become U+FFFD; control characters survive as escapes.
  EXPECT_EQ(f.at("message").string_value(),
            std::string("bad \"quote\" \\ line\nbreak caf\xc3\xa9 \xef\xbf\xbd\xef\xbf\xbd ") +
                std::string(1, '\0') + "end");
  EXPECT_EQ(f.at("request_id").string_value(), "id\r\n7");
  const std::string bare = JsonLogLine("t", "WARNING", "onnxruntime.x", "m", "");
  ASSERT_TRUE(google::protobuf::util::JsonStringToMessage(bare, &parsed).ok()) << bare;
  EXPECT_EQ(parsed.fields().at("level").string_value(), "WARNING");
  EXPECT_EQ(parsed.fields().at("request_id").string_value(), "-");
}

}  // namespace
}  // namespace engine
