#include "names.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>


namespace engine::server {
namespace {

// A refusal must say which rule broke, so assert a fragment of the reason, not just non-empty.
::testing::AssertionResult Refused(const std::string& name, const std::string& fragment) {
  const std::string problem = ModelNameProblem(name);
  if (problem.empty()) {
    return ::testing::AssertionFailure() << QuoteForMessage(name) << " was accepted";
  }
  if (problem.find(fragment) == std::string::npos) {
    return ::testing::AssertionFailure()
           << QuoteForMessage(name) << ": reason \"" << problem << "\" lacks \"" << fragment
           << "\"";
  }
  return ::testing::AssertionSuccess();
}

TEST(ModelName, AcceptsTheGrammar) {
  for (const std::string name :
       {"a", "Z", "0", "_", "resnet50", "my-model", "my_model.v2", "model..1", "v1.2.", "a-",
        "_hidden-not", "9lives", "A_b-c.d"}) {
    EXPECT_EQ(ModelNameProblem(name), "") << name;
  }
  EXPECT_EQ(ModelNameProblem(std::string(kMaxModelNameLength, 'm')), "");
}

TEST(ModelName, RefusesEmpty) { EXPECT_TRUE(Refused("", "must not be empty")); }

TEST(ModelName, RefusesPathTraversal) {
  // Anything with a separator could name a file outside the repository.
  for (const std::string name :
       {"../x", "..\\x", "a/../../etc", "/etc/passwd", "/", "x/", "a/.", "a/..", "a\\b", "\\x"}) {
    EXPECT_TRUE(Refused(name, "path separator")) << name;
  }
  // Without a separator, the leading dot is what makes `.`, `..` and `.x` refused.
  for (const std::string name : {".", "..", "...", ".hidden"}) {
    EXPECT_TRUE(Refused(name, "must not start with '.'")) << name;
  }
}

TEST(ModelName, RefusesNulAnywhere) {
  // std::string carries the NUL: a C-string check would see only "model".
  EXPECT_TRUE(Refused(std::string("model\0.onnx", 11), "NUL"));
  EXPECT_TRUE(Refused(std::string("\0", 1), "NUL"));
  EXPECT_TRUE(Refused(std::string("ab\0", 3), "NUL"));
}

TEST(ModelName, RefusesPercentEncoding) {
  // Nothing is decoded, and nothing that a later layer might decode is let through.
  for (const std::string name : {"%2e%2e", "%2E%2E", "%2e%2e%2fetc", "a%2fb", "%252f", "a%"}) {
    EXPECT_TRUE(Refused(name, "must not contain '%' (URL-encoded")) << name;
  }
}

TEST(ModelName, RefusesLeadingDash) { EXPECT_TRUE(Refused("-rf", "must not start with '-'")); }

TEST(ModelName, RefusesOverlong) {
  EXPECT_TRUE(
      Refused(std::string(kMaxModelNameLength + 1, 'm'), "at most 128 characters; was 129"));
  EXPECT_TRUE(Refused(std::string(100000, 'm'), "was 100000"));
}

TEST(ModelName, RefusesOtherCharacters) {
  // ':' and '@' belong to references (name:1, name@prod); the rest are never in a name.
  EXPECT_TRUE(Refused("name:1", "character ':' is not allowed"));
  EXPECT_TRUE(Refused("name@prod", "character '@' is not allowed"));
  EXPECT_TRUE(Refused("two words", "character ' ' is not allowed"));
  EXPECT_TRUE(Refused("tab\there", "character '\\x09' is not allowed"));
  EXPECT_TRUE(Refused("line\n", "character '\\x0a' is not allowed"));
  EXPECT_TRUE(Refused("mod\xc3\xa8le", "character '\\xc3' is not allowed"));  // "modèle"
  EXPECT_TRUE(Refused("\xc3\xa9t\xc3\xa9", "must start with an ASCII letter"));
  EXPECT_TRUE(Refused("+x", "must start with an ASCII letter"));
}

TEST(ModelVersion, EmptyIsTheDefaultVersion) {
  int64_t version = 99;
  ASSERT_TRUE(ParseModelVersion("", &version));
  EXPECT_EQ(version, 0);
}

TEST(ModelVersion, AcceptsDecimalInRange) {
  int64_t version = 0;
  ASSERT_TRUE(ParseModelVersion("1", &version));
  EXPECT_EQ(version, 1);
  ASSERT_TRUE(ParseModelVersion("42", &version));
  EXPECT_EQ(version, 42);
  ASSERT_TRUE(ParseModelVersion("1000000000", &version));
  EXPECT_EQ(version, 1000000000);
  ASSERT_TRUE(ParseModelVersion("2147483647", &version));
  EXPECT_EQ(version, kMaxModelVersion);
}

TEST(ModelVersion, RefusesEverythingElse) {
  const std::vector<std::string> bad = {
      "0", "00", "01", "007", "-1", "+1", " 1", "1 ", "1.0", "1e3", "0x10", "abc", "1a",
      "2147483648", "4294967297", "9999999999", "10000000000", "99999999999999999999",
      std::string("1\0", 2), std::string("\0" "1", 2)};
  for (const std::string& text : bad) {
    int64_t version = 7;
    EXPECT_FALSE(ParseModelVersion(text, &version)) << QuoteForMessage(text);
  }
}

TEST(QuoteForMessage, EscapesWhatIsNotPrintableAscii) {
  EXPECT_EQ(QuoteForMessage("resnet"), "'resnet'");
  EXPECT_EQ(QuoteForMessage(""), "''");
  EXPECT_EQ(QuoteForMessage(std::string("a\0b", 3)), "'a\\x00b'");
  EXPECT_EQ(QuoteForMessage("\n\x7f\xff"), "'\\x0a\\x7f\\xff'");
  // The quote and the backslash themselves are escaped so the quoting cannot be forged.
  EXPECT_EQ(QuoteForMessage("it's\\"), "'it\\x27s\\x5c'");
}

TEST(QuoteForMessage, CutsAtEightyCharacters) {
  EXPECT_EQ(QuoteForMessage(std::string(80, 'x')), "'" + std::string(80, 'x') + "'");
  EXPECT_EQ(QuoteForMessage(std::string(81, 'x')), "'" + std::string(80, 'x') + "'...");
  EXPECT_EQ(QuoteForMessage(std::string(1 << 20, 'x')).size(), 80u + 5u);
}

}  // namespace
}  // namespace engine::server
