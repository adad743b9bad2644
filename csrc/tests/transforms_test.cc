#include "transforms.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "murmur3.h"
#include "status.h"

namespace engine {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

TEST(Murmur3, PublishedVectors) {
  EXPECT_EQ(Murmur3X86_32("", 0, 0), 0u);
  EXPECT_EQ(Murmur3X86_32("", 0, 1), 0x514E28B7u);
  EXPECT_EQ(Murmur3X86_32("", 0, 0xffffffffu), 0x81F16F39u);
  EXPECT_EQ(Murmur3X86_32("\0\0\0\0", 4, 0), 0x2362F9DEu);
  EXPECT_EQ(Murmur3X86_32("aaaa", 4, 0x9747b28cu), 0x5A97808Au);
  EXPECT_EQ(Murmur3X86_32("abc", 3, 0), 0xB3DD93FAu);
  EXPECT_EQ(Murmur3X86_32("Hello, world!", 13, 0x9747b28cu), 0x24884CBAu);
  const std::string fox = "The quick brown fox jumps over the lazy dog";
  EXPECT_EQ(Murmur3X86_32(fox.data(), fox.size(), 0x9747b28cu), 0x2FA826CDu);
}

TEST(Murmur3, U64IsItsLittleEndianBytes) {
  const uint64_t key = 0x0123456789abcdefull;
  unsigned char bytes[8];
  std::memcpy(bytes, &key, 8);
  EXPECT_EQ(Murmur3X86_32U64(key, 7), Murmur3X86_32(bytes, 8, 7));
}

StepSpec Affine(double offset, double scale) {
  StepSpec s;
  s.kind = StepKind::kAffine;
  s.offset = offset;
  s.scale = scale;
  return s;
}

FeatureSpec Chain(std::string name, size_t column, std::vector<StepSpec> steps) {
  FeatureSpec f;
  f.name = std::move(name);
  f.columns = {column};
  f.steps = std::move(steps);
  return f;
}

ColumnView Doubles(const std::vector<double>& v) {
  ColumnView c;
  c.type = ElementType::kFloat64;
  c.rows = static_cast<int64_t>(v.size());
  c.data = v.data();
  return c;
}

ColumnView Strings(const std::vector<std::string>& v) {
  ColumnView c;
  c.type = ElementType::kString;
  c.rows = static_cast<int64_t>(v.size());
  c.strings = v.data();
  return c;
}

std::vector<float> Apply(const TransformPlan& plan, const std::vector<ColumnView>& cols,
                         int threads = 1) {
  const int64_t rows = cols.empty() ? 0 : cols[0].rows;
  std::vector<float> out(static_cast<size_t>(rows * plan.width()), -99.0f);
  ApplyTransformsTo(plan, cols, rows, out.data(), threads);
  return out;
}

TEST(TransformPlan, NumericChain) {
  StepSpec impute;
  impute.kind = StepKind::kImputeNumeric;
  impute.value = 3.0;
  impute.replace_inf = true;
  StepSpec clip;
  clip.kind = StepKind::kClip;
  clip.max = 10.0;
  StepSpec log1p;
  log1p.kind = StepKind::kLog1p;
  TransformPlan plan({{"x", ElementType::kFloat64}},
                     {Chain("a", 0, {impute, Affine(1.0, 2.0)}), Chain("b", 0, {clip, log1p})});
  ASSERT_EQ(plan.width(), 2);
  const std::vector<double> x = {kNaN, kInf, 5.0, 100.0, -1.0, -2.0};
  auto out = Apply(plan, {Doubles(x)});
  EXPECT_EQ(out[0], 1.0f);  // NaN -> 3 -> (3 - 1) / 2
  EXPECT_EQ(out[2], 1.0f);  // inf imputed too
  EXPECT_EQ(out[4], 2.0f);
  EXPECT_EQ(out[3], static_cast<float>(std::log1p(10.0)));  // inf clipped to 10
  EXPECT_TRUE(std::isnan(out[1]));                           // NaN passes clip and log1p
  EXPECT_EQ(out[9], -std::numeric_limits<float>::infinity());  // log1p(-1)
  EXPECT_TRUE(std::isnan(out[11]));                          // log1p(-2)
}

TEST(TransformPlan, BucketizeIndexAndOneHot) {
  StepSpec b;
  b.kind = StepKind::kBucketize;
  b.boundaries = {0.0, 1.0};
  StepSpec hot = b;
  hot.encoding = Encoding::kOneHot;
  TransformPlan plan({{"x", ElementType::kFloat64}}, {Chain("i", 0, {b}), Chain("h", 0, {hot})});
  ASSERT_EQ(plan.width(), 1 + 4);
  auto out = Apply(plan, {Doubles({-kInf, 0.0, 0.5, 1.0, kInf, kNaN})});
  const std::vector<float> index = {0, 1, 1, 2, 2, 3};
  for (size_t r = 0; r < index.size(); ++r) {
    EXPECT_EQ(out[r * 5], index[r]) << r;
    for (int k = 0; k < 4; ++k) EXPECT_EQ(out[r * 5 + 1 + k], k == index[r] ? 1.0f : 0.0f);
  }
}

TEST(TransformPlan, VocabularyWithAndWithoutOovBuckets) {
  StepSpec impute;
  impute.kind = StepKind::kImputeString;
  impute.string_value = "b";
  StepSpec v;
  v.kind = StepKind::kVocabulary;
  v.vocabulary = {"a", "b", "c"};
  v.num_buckets = 0;
  v.encoding = Encoding::kOneHot;
  StepSpec oov = v;
  oov.num_buckets = 4;
  oov.seed = 9;
  oov.encoding = Encoding::kIndex;
  TransformPlan plan({{"s", ElementType::kString}},
                     {Chain("v", 0, {v}), Chain("o", 0, {impute, oov})});
  ASSERT_EQ(plan.width(), 3 + 1);
  const std::vector<std::string> s = {"a", "c", "", "zz"};
  auto out = Apply(plan, {Strings(s)});
  const std::vector<std::vector<float>> hot = {{1, 0, 0}, {0, 0, 1}, {0, 0, 0}, {0, 0, 0}};
  for (size_t r = 0; r < 4; ++r) {
    for (size_t k = 0; k < 3; ++k) EXPECT_EQ(out[r * 4 + k], hot[r][k]);
  }
  EXPECT_EQ(out[0 * 4 + 3], 0.0f);
  EXPECT_EQ(out[2 * 4 + 3], 1.0f);  // "" imputed to "b"
  EXPECT_EQ(out[3 * 4 + 3], static_cast<float>(3 + Murmur3X86_32("zz", 2, 9) % 4));
}

TEST(TransformPlan, HashAndCrossMatchTheirDefinition) {
  StepSpec h;
  h.kind = StepKind::kHash;
  h.num_buckets = 1000;
  h.seed = 5;
  FeatureSpec cross;
  cross.name = "x";
  cross.columns = {0, 1};
  cross.cross = true;
  cross.cross_buckets = 97;
  cross.cross_seed = 3;
  TransformPlan plan({{"s", ElementType::kString}, {"t", ElementType::kString}},
                     {Chain("h", 0, {h}), cross});
  const std::vector<std::string> s = {"paris", ""};
  const std::vector<std::string> t = {"phone", "日本"};
  auto out = Apply(plan, {Strings(s), Strings(t)});
  for (size_t r = 0; r < 2; ++r) {
    EXPECT_EQ(out[r * 2], static_cast<float>(Murmur3X86_32(s[r].data(), s[r].size(), 5) % 1000));
    const uint64_t key = (uint64_t{Murmur3X86_32(s[r].data(), s[r].size(), 3)} << 32) |
                         Murmur3X86_32(t[r].data(), t[r].size(), 3);
    EXPECT_EQ(out[r * 2 + 1], static_cast<float>(Murmur3X86_32U64(key, 3) % 97));
  }
}

TEST(TransformPlan, ArrowOffsetsEqualStdStrings) {
  StepSpec h;
  h.kind = StepKind::kHash;
  h.num_buckets = 1 << 20;
  TransformPlan plan({{"s", ElementType::kString}}, {Chain("h", 0, {h})});
  const std::vector<std::string> s = {"", "abc", "hello world", "x"};
  std::string bytes;
  std::vector<int64_t> offsets = {0};
  for (const auto& v : s) {
    bytes += v;
    offsets.push_back(static_cast<int64_t>(bytes.size()));
  }
  ColumnView arrow;
  arrow.type = ElementType::kString;
  arrow.rows = 4;
  arrow.offsets = offsets.data();
  arrow.bytes = bytes.data();
  arrow.bytes_size = static_cast<int64_t>(bytes.size());
  EXPECT_EQ(Apply(plan, {arrow}), Apply(plan, {Strings(s)}));
  offsets[2] = 100;  // beyond the bytes
  offsets[4] = 100;
  EXPECT_THROW(Apply(plan, {arrow}), CoreError);
}

TEST(TransformPlan, ThreadsGiveTheSameResult) {
  StepSpec v;
  v.kind = StepKind::kVocabulary;
  v.vocabulary = {"0", "1", "2", "3"};
  v.num_buckets = 2;
  v.encoding = Encoding::kOneHot;
  TransformPlan plan({{"x", ElementType::kFloat64}, {"s", ElementType::kString}},
                     {Chain("a", 0, {Affine(0.5, 3.0)}), Chain("v", 1, {v})});
  const int64_t rows = 100000;
  std::vector<double> x(rows);
  std::vector<std::string> s(rows);
  for (int64_t i = 0; i < rows; ++i) {
    x[i] = static_cast<double>(i % 977) - 300.0;
    s[i] = std::to_string(i % 7);
  }
  EXPECT_EQ(Apply(plan, {Doubles(x), Strings(s)}, 1), Apply(plan, {Doubles(x), Strings(s)}, 4));
}

TEST(TransformPlan, NumericInputsWidenExactly) {
  TransformPlan plan({{"x", ElementType::kFloat64}}, {Chain("a", 0, {Affine(1.0, 4.0)})});
  const std::vector<float> f = {1.5f, -3.0f};
  const std::vector<int64_t> i = {5, -7};
  ColumnView cf;
  cf.type = ElementType::kFloat32;
  cf.rows = 2;
  cf.data = f.data();
  ColumnView ci;
  ci.type = ElementType::kInt64;
  ci.rows = 2;
  ci.data = i.data();
  EXPECT_EQ(Apply(plan, {cf}), (std::vector<float>{0.125f, -1.0f}));
  EXPECT_EQ(Apply(plan, {ci}), (std::vector<float>{1.0f, -2.0f}));
}

TEST(TransformPlan, HostTensorEntryPoint) {
  StepSpec h;
  h.kind = StepKind::kHash;
  h.num_buckets = 10;
  TransformPlan plan({{"x", ElementType::kFloat32}, {"s", ElementType::kString}},
                     {Chain("a", 0, {Affine(0.0, 2.0)}), Chain("h", 1, {h})});
  const std::vector<float> x = {2.0f, 4.0f, 6.0f};
  HostTensor tx;
  tx.type = ElementType::kFloat32;
  tx.shape = {3, 1};
  tx.data = x.data();
  tx.byte_size = sizeof(float) * 3;
  HostTensor ts;
  ts.type = ElementType::kString;
  ts.shape = {3};
  ts.strings = {"a", "b", "c"};
  HostTensor out = ApplyTransforms(plan, {&tx, &ts});
  ASSERT_EQ(out.shape, (std::vector<int64_t>{3, 2}));
  const float* o = static_cast<const float*>(out.data);
  EXPECT_EQ(o[0], 1.0f);
  EXPECT_EQ(o[5], static_cast<float>(Murmur3X86_32("c", 1, 0) % 10));

  try {
    ApplyTransforms(plan, {&ts, &tx});
    FAIL() << "expected an error";
  } catch (const CoreError& e) {
    EXPECT_EQ(e.code(), StatusCode::kInvalidInput);
    EXPECT_NE(std::string(e.what()).find("column 'x' must be numeric"), std::string::npos);
  }
  ts.shape = {2};
  ts.strings = {"a", "b"};
  try {
    ApplyTransforms(plan, {&tx, &ts});
    FAIL() << "expected an error";
  } catch (const CoreError& e) {
    EXPECT_NE(std::string(e.what()).find("column 's' has 2 rows; expected 3"), std::string::npos);
  }
}

TEST(TransformPlan, InvalidPlansNameTheFeature) {
  auto expect_config_error = [](std::vector<InputSpec> in, std::vector<FeatureSpec> f,
                                const std::string& fragment) {
    try {
      TransformPlan plan(std::move(in), std::move(f));
      FAIL() << "expected: " << fragment;
    } catch (const CoreError& e) {
      EXPECT_EQ(e.code(), StatusCode::kInvalidConfig);
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
  };
  StepSpec h;
  h.kind = StepKind::kHash;
  h.num_buckets = 0;
  expect_config_error({{"s", ElementType::kString}}, {Chain("f", 0, {h})},
                      "feature 'f' step 0: hash needs num_buckets >= 1");
  expect_config_error({{"x", ElementType::kFloat64}}, {Chain("g", 0, {Affine(0.0, 0.0)})},
                      "feature 'g' step 0: affine needs a finite offset");
  h.num_buckets = 3;
  expect_config_error({{"x", ElementType::kFloat64}}, {Chain("g", 0, {h})},
                      "a string step on a numeric column");
  expect_config_error({{"s", ElementType::kString}}, {Chain("s", 0, {})},
                      "a string chain must end in vocabulary or hash");
  StepSpec v;
  v.kind = StepKind::kVocabulary;
  v.vocabulary = {"a", "a"};
  expect_config_error({{"s", ElementType::kString}}, {Chain("v", 0, {v})},
                      "duplicate vocabulary entry 'a'");
  FeatureSpec cross;
  cross.name = "c";
  cross.cross = true;
  cross.columns = {0, 1};
  cross.cross_buckets = 4;
  expect_config_error({{"s", ElementType::kString}, {"x", ElementType::kInt64}}, {cross},
                      "cross columns must be strings");
}

TEST(TransformPlan, ZeroRows) {
  TransformPlan plan({{"x", ElementType::kFloat64}}, {Chain("a", 0, {Affine(0.0, 1.0)})});
  EXPECT_TRUE(Apply(plan, {Doubles({})}).empty());
}

}  // namespace
}  // namespace engine
