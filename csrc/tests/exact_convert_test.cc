#include "exact_convert.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <memory>
#include <vector>

#include "status.h"

namespace engine {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();
constexpr double kTwo63 = 9223372036854775808.0;  // 2^63

// A [n] tensor of `type` holding `values`' bytes (a copy it owns).
template <typename T>
HostTensor Column(ElementType type, const std::vector<T>& values) {
  auto storage = std::make_shared<std::vector<T>>(values);
  HostTensor t;
  t.type = type;
  t.shape = {static_cast<int64_t>(values.size())};
  t.data = storage->data();
  t.byte_size = storage->size() * sizeof(T);
  t.owner = storage;
  return t;
}

template <typename T>
std::vector<T> Values(const HostTensor& t) {
  std::vector<T> out(t.byte_size / sizeof(T));
  std::memcpy(out.data(), t.data, t.byte_size);
  return out;
}

std::string ErrorOf(const std::string& name, const HostTensor& t, ElementType to) {
  try {
    ConvertExactly(name, t, to);
  } catch (const CoreError& e) {
    EXPECT_EQ(e.code(), StatusCode::kInvalidInput);
    return e.what();
  }
  return "";
}

TEST(InexactReason, Float64TakesEveryDouble) {
  for (double v : {0.0, -0.0, 0.1, 1e300, kNaN, kInf, -kInf, kTwo63}) {
    EXPECT_EQ(InexactReason(v, ElementType::kFloat64), nullptr) << v;
  }
}

TEST(InexactReason, Float32TakesOnlyWhatItHoldsExactly) {
  for (double v : {0.0, -0.0, 2.5, 16777216.0, 1099511627776.0 /* 2^40 */, kNaN, kInf, -kInf,
                   static_cast<double>(std::numeric_limits<float>::max()),
                   static_cast<double>(std::numeric_limits<float>::denorm_min())}) {
    EXPECT_EQ(InexactReason(v, ElementType::kFloat32), nullptr) << v;
  }
  EXPECT_STREQ(InexactReason(0.1, ElementType::kFloat32), "float32 would round it");
  EXPECT_STREQ(InexactReason(16777217.0, ElementType::kFloat32), "float32 would round it");
  EXPECT_STREQ(InexactReason(1e-50, ElementType::kFloat32), "float32 would round it");
  EXPECT_STREQ(InexactReason(1e39, ElementType::kFloat32), "outside float32's range");
  EXPECT_STREQ(InexactReason(-1e300, ElementType::kFloat32), "outside float32's range");
}

TEST(InexactReason, Int64TakesWholeNumbersInRange) {
  for (double v : {0.0, -0.0, 2.0, -3.0, 9007199254740992.0, -kTwo63, kTwo63 - 1024.0}) {
    EXPECT_EQ(InexactReason(v, ElementType::kInt64), nullptr) << v;
  }
  EXPECT_STREQ(InexactReason(2.5, ElementType::kInt64), "not a whole number");
  EXPECT_STREQ(InexactReason(-0.5, ElementType::kInt64), "not a whole number");
  EXPECT_STREQ(InexactReason(kNaN, ElementType::kInt64), "NaN has no int64 value");
  EXPECT_STREQ(InexactReason(kInf, ElementType::kInt64), "infinity has no int64 value");
  EXPECT_STREQ(InexactReason(kTwo63, ElementType::kInt64), "outside int64's range");
  EXPECT_STREQ(InexactReason(-kTwo63 * 2, ElementType::kInt64), "outside int64's range");
}

TEST(InexactReason, IntegersAreTakenAsThemselves) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  const int64_t two53 = int64_t{1} << 53;
  for (int64_t v : {int64_t{0}, kMax, kMin, two53 + 1}) {
    EXPECT_EQ(InexactIntReason(v, ElementType::kInt64), nullptr) << v;
  }
  // A float holds an integer when its significant bits fit: 53 for float64, 24 for float32.
  for (int64_t v : {int64_t{0}, two53, -two53, two53 + 2, kMin, int64_t{3} << 60}) {
    EXPECT_EQ(InexactIntReason(v, ElementType::kFloat64), nullptr) << v;
  }
  for (int64_t v : {two53 + 1, -two53 - 1, kMax, kMin + 1}) {
    EXPECT_STREQ(InexactIntReason(v, ElementType::kFloat64), "float64 would round it") << v;
  }
  for (int64_t v : {int64_t{16777216}, int64_t{-16777216}, int64_t{16777215} << 39, kMin}) {
    EXPECT_EQ(InexactIntReason(v, ElementType::kFloat32), nullptr) << v;
  }
  for (int64_t v : {int64_t{16777217}, int64_t{-16777217}, (int64_t{1} << 60) + 1, kMax}) {
    EXPECT_STREQ(InexactIntReason(v, ElementType::kFloat32), "float32 would round it") << v;
  }

  const uint64_t two63 = uint64_t{1} << 63;
  EXPECT_EQ(InexactUIntReason(two63 - 1, ElementType::kInt64), nullptr);
  EXPECT_STREQ(InexactUIntReason(two63, ElementType::kInt64), "outside int64's range");
  EXPECT_STREQ(InexactUIntReason(~uint64_t{0}, ElementType::kInt64), "outside int64's range");
  EXPECT_EQ(InexactUIntReason(two63, ElementType::kFloat64), nullptr);
  EXPECT_EQ(InexactUIntReason(two63, ElementType::kFloat32), nullptr);
  EXPECT_EQ(InexactUIntReason(0xFFFFFFFFFFFFF800u, ElementType::kFloat64), nullptr);
  EXPECT_STREQ(InexactUIntReason(~uint64_t{0}, ElementType::kFloat64), "float64 would round it");
  EXPECT_STREQ(InexactUIntReason(0xFFFFFFFFFFFFF800u, ElementType::kFloat32),
               "float32 would round it");
  EXPECT_STREQ(InexactIntReason(1, ElementType::kInt32), "not a dtype of a transform column");
}

TEST(IsConvertibleNumeric, EveryIntegerAndFloatButNotBoolOrString) {
  for (ElementType t : {ElementType::kFloat16, ElementType::kFloat32, ElementType::kFloat64,
                        ElementType::kInt8, ElementType::kInt16, ElementType::kInt32,
                        ElementType::kInt64, ElementType::kUInt8, ElementType::kUInt16,
                        ElementType::kUInt32, ElementType::kUInt64}) {
    EXPECT_TRUE(IsConvertibleNumeric(t)) << ElementTypeName(t);
  }
  for (ElementType t : {ElementType::kBool, ElementType::kString, ElementType::kUndefined}) {
    EXPECT_FALSE(IsConvertibleNumeric(t)) << ElementTypeName(t);
  }
}

TEST(ConvertExactly, IntegersToFloatColumns) {
  HostTensor f32 = ConvertExactly("x", Column<int64_t>(ElementType::kInt64, {1, 2, -3}),
                                  ElementType::kFloat32);
  EXPECT_EQ(f32.type, ElementType::kFloat32);
  EXPECT_EQ(f32.shape, std::vector<int64_t>({3}));
  EXPECT_EQ(Values<float>(f32), std::vector<float>({1.f, 2.f, -3.f}));
  HostTensor from_i32 = ConvertExactly("x", Column<int32_t>(ElementType::kInt32, {7, -8}),
                                       ElementType::kFloat32);
  EXPECT_EQ(Values<float>(from_i32), std::vector<float>({7.f, -8.f}));
  HostTensor from_u8 = ConvertExactly("x", Column<uint8_t>(ElementType::kUInt8, {0, 255}),
                                      ElementType::kFloat64);
  EXPECT_EQ(Values<double>(from_u8), std::vector<double>({0.0, 255.0}));
  // 2^24 + 1 has no float32: refused, not rounded to 2^24.
  EXPECT_NE(ErrorOf("x", Column<int64_t>(ElementType::kInt64, {1, 16777217}),
                    ElementType::kFloat32)
                .find("column 'x': int64 value 16777217 does not convert exactly to float32"),
            std::string::npos);
  EXPECT_NE(ErrorOf("x", Column<int32_t>(ElementType::kInt32, {16777217}), ElementType::kFloat32)
                .find("(row 0: float32 would round it)"),
            std::string::npos);
}

TEST(ConvertExactly, FloatsToFloatColumns) {
  HostTensor narrowed = ConvertExactly(
      "f", Column<double>(ElementType::kFloat64, {0.5, kNaN, -kInf, 3.0}), ElementType::kFloat32);
  const std::vector<float> got = Values<float>(narrowed);
  EXPECT_EQ(got[0], 0.5f);
  EXPECT_TRUE(std::isnan(got[1]));  // a missing value stays missing
  EXPECT_EQ(got[2], -std::numeric_limits<float>::infinity());
  EXPECT_EQ(got[3], 3.f);
  HostTensor widened = ConvertExactly("f", Column<float>(ElementType::kFloat32, {0.1f}),
                                      ElementType::kFloat64);
  EXPECT_EQ(Values<double>(widened)[0], static_cast<double>(0.1f));
  // float16 1.0 and -2.0
  HostTensor half = ConvertExactly("f", Column<uint16_t>(ElementType::kFloat16, {0x3c00, 0xc000}),
                                   ElementType::kFloat32);
  EXPECT_EQ(Values<float>(half), std::vector<float>({1.f, -2.f}));
  const std::string e = ErrorOf("f", Column<double>(ElementType::kFloat64, {2.0, 0.1}),
                                ElementType::kFloat32);
  EXPECT_NE(e.find("column 'f': float64 value 0.1 does not convert exactly to float32, the "
                   "transform spec's dtype for this column (row 1: float32 would round it)"),
            std::string::npos)
      << e;
  EXPECT_NE(ErrorOf("f", Column<double>(ElementType::kFloat64, {1e39}), ElementType::kFloat32)
                .find("value 1e+39 does not convert exactly to float32"),
            std::string::npos);
}

TEST(ConvertExactly, NumbersToIntColumns) {
  HostTensor from_f64 = ConvertExactly(
      "n", Column<double>(ElementType::kFloat64, {2.0, -0.0, -7.0}), ElementType::kInt64);
  EXPECT_EQ(Values<int64_t>(from_f64), std::vector<int64_t>({2, 0, -7}));
  HostTensor from_f32 = ConvertExactly("n", Column<float>(ElementType::kFloat32, {1099511627776.f}),
                                       ElementType::kInt64);
  EXPECT_EQ(Values<int64_t>(from_f32), std::vector<int64_t>({int64_t{1} << 40}));
  HostTensor from_u32 = ConvertExactly("n", Column<uint32_t>(ElementType::kUInt32, {4294967295u}),
                                       ElementType::kInt64);
  EXPECT_EQ(Values<int64_t>(from_u32), std::vector<int64_t>({4294967295}));
  HostTensor lowest = ConvertExactly("n", Column<double>(ElementType::kFloat64, {-kTwo63}),
                                     ElementType::kInt64);
  EXPECT_EQ(Values<int64_t>(lowest)[0], std::numeric_limits<int64_t>::min());

  std::string e = ErrorOf("n", Column<double>(ElementType::kFloat64, {1.0, 2.5}),
                          ElementType::kInt64);
  EXPECT_NE(e.find("column 'n': float64 value 2.5 does not convert exactly to int64"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("(row 1: not a whole number); cast the column first"), std::string::npos) << e;
  e = ErrorOf("n", Column<double>(ElementType::kFloat64, {kNaN}), ElementType::kInt64);
  EXPECT_NE(e.find("float64 value nan does not convert exactly to int64"), std::string::npos) << e;
  EXPECT_NE(e.find("NaN has no int64 value"), std::string::npos) << e;
  e = ErrorOf("n", Column<float>(ElementType::kFloat32, {-std::numeric_limits<float>::infinity()}),
              ElementType::kInt64);
  EXPECT_NE(e.find("float32 value -inf"), std::string::npos) << e;
  e = ErrorOf("n", Column<double>(ElementType::kFloat64, {kTwo63}), ElementType::kInt64);
  EXPECT_NE(e.find("outside int64's range"), std::string::npos) << e;
  // uint64 beyond int64: refused, never wrapped to a negative number.
  e = ErrorOf("n", Column<uint64_t>(ElementType::kUInt64, {18446744073709551615u}),
              ElementType::kInt64);
  EXPECT_NE(e.find("uint64 value 18446744073709551615 does not convert exactly to int64"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("outside int64's range"), std::string::npos) << e;
}

TEST(ConvertExactly, IntegersToIntColumnsUseIntegerArithmetic) {
  // 2^53 + 1 and 2^63 - 1 have no double: read through one they would become 2^53 and 2^63.
  const uint64_t two53_plus1 = (uint64_t{1} << 53) + 1;
  const uint64_t int64_max = uint64_t{std::numeric_limits<int64_t>::max()};
  HostTensor from_u64 =
      ConvertExactly("n", Column<uint64_t>(ElementType::kUInt64, {two53_plus1, int64_max, 0}),
                     ElementType::kInt64);
  EXPECT_EQ(Values<int64_t>(from_u64),
            std::vector<int64_t>({9007199254740993, std::numeric_limits<int64_t>::max(), 0}));
  const std::string e = ErrorOf(
      "n", Column<uint64_t>(ElementType::kUInt64, {1, int64_max + 1}), ElementType::kInt64);
  EXPECT_NE(e.find("column 'n': uint64 value 9223372036854775808 does not convert exactly to "
                   "int64, the transform spec's dtype for this column (row 1: outside int64's "
                   "range); cast the column first"),
            std::string::npos)
      << e;
}

TEST(ConvertExactly, IntegersToFloatColumnsOnlyWhenTheFloatHoldsThem) {
  const int64_t two53 = int64_t{1} << 53;
  const int64_t lowest = std::numeric_limits<int64_t>::min();
  // Exact: up to 53 (24) significant bits at any magnitude, -2^63 included.
  HostTensor f64 = ConvertExactly(
      "d", Column<int64_t>(ElementType::kInt64, {two53, -two53, lowest, int64_t{1} << 62}),
      ElementType::kFloat64);
  EXPECT_EQ(Values<double>(f64), std::vector<double>({9007199254740992.0, -9007199254740992.0,
                                                      -kTwo63, 4611686018427387904.0}));
  HostTensor u64 = ConvertExactly(
      "d", Column<uint64_t>(ElementType::kUInt64, {0xFFFFFFFFFFFFF800u, uint64_t{1} << 63}),
      ElementType::kFloat64);
  EXPECT_EQ(Values<double>(u64), std::vector<double>({18446744073709549568.0, kTwo63}));
  HostTensor f32 = ConvertExactly(
      "f", Column<int64_t>(ElementType::kInt64, {int64_t{1} << 60, lowest}), ElementType::kFloat32);
  EXPECT_EQ(Values<float>(f32),
            std::vector<float>({1152921504606846976.f, -9223372036854775808.f}));
  HostTensor i32 = ConvertExactly(
      "f", Column<int32_t>(ElementType::kInt32, {std::numeric_limits<int32_t>::min()}),
      ElementType::kFloat32);
  EXPECT_EQ(Values<float>(i32), std::vector<float>({-2147483648.f}));

  // Refused where the float would round: each names the value as sent and the row.
  const auto refused = [](const std::string& column, const HostTensor& t, ElementType to,
                          const std::string& expected) {
    const std::string e = ErrorOf(column, t, to);
    EXPECT_NE(e.find(expected), std::string::npos) << e;
  };
  refused("d", Column<int64_t>(ElementType::kInt64, {1, two53 + 1}), ElementType::kFloat64,
          "column 'd': int64 value 9007199254740993 does not convert exactly to float64, the "
          "transform spec's dtype for this column (row 1: float64 would round it)");
  refused("d", Column<int64_t>(ElementType::kInt64, {-two53 - 1}), ElementType::kFloat64,
          "int64 value -9007199254740993 does not convert exactly to float64");
  // 2^63 - 1 rounds to 2^63, which has no int64 to compare back with.
  refused("d", Column<int64_t>(ElementType::kInt64, {std::numeric_limits<int64_t>::max()}),
          ElementType::kFloat64,
          "int64 value 9223372036854775807 does not convert exactly to float64");
  refused("d", Column<uint64_t>(ElementType::kUInt64, {uint64_t{1} << 53 | 1}),
          ElementType::kFloat64, "uint64 value 9007199254740993 does not convert exactly");
  refused("d", Column<uint64_t>(ElementType::kUInt64, {18446744073709551615u}),
          ElementType::kFloat64,
          "uint64 value 18446744073709551615 does not convert exactly to float64");
  // 2^60 + 1 is a double's 2^60, which float32 holds: still refused, the value changes.
  refused("f", Column<int64_t>(ElementType::kInt64, {(int64_t{1} << 60) + 1}),
          ElementType::kFloat32,
          "int64 value 1152921504606846977 does not convert exactly to float32, the transform "
          "spec's dtype for this column (row 0: float32 would round it)");
  refused("f", Column<uint64_t>(ElementType::kUInt64, {(uint64_t{1} << 53) + 2}),
          ElementType::kFloat32, "uint64 value 9007199254740994 does not convert exactly");
  refused("f", Column<int32_t>(ElementType::kInt32, {std::numeric_limits<int32_t>::max()}),
          ElementType::kFloat32, "int32 value 2147483647 does not convert exactly to float32");
}

TEST(ConvertExactly, WritesTheValueAsPythonDoes) {
  // The in-process path's message prints Python's repr of the value: the same words here.
  const auto text = [](double v, ElementType to) {
    const std::string e = ErrorOf("v", Column<double>(ElementType::kFloat64, {v}), to);
    const size_t begin = e.find("value ") + 6;
    return e.substr(begin, e.find(" does not") - begin);
  };
  EXPECT_EQ(text(2.5, ElementType::kInt64), "2.5");
  EXPECT_EQ(text(100000.5, ElementType::kInt64), "100000.5");
  EXPECT_EQ(text(0.0001, ElementType::kFloat32), "0.0001");
  EXPECT_EQ(text(0.00001, ElementType::kFloat32), "1e-05");
  EXPECT_EQ(text(16777217.0, ElementType::kFloat32), "16777217.0");
  EXPECT_EQ(text(1e20, ElementType::kInt64), "1e+20");
  EXPECT_EQ(text(kTwo63, ElementType::kInt64), "9.223372036854776e+18");
  EXPECT_EQ(text(-kNaN, ElementType::kInt64), "nan");
  EXPECT_EQ(text(-kInf, ElementType::kInt64), "-inf");
  // A float32's value is its double (Python prints the .item() of the array's element).
  EXPECT_NE(ErrorOf("v", Column<float>(ElementType::kFloat32, {0.1f}), ElementType::kInt64)
                .find("float32 value 0.10000000149011612 does not"),
            std::string::npos);
  // Integers exactly, as sent.
  EXPECT_NE(ErrorOf("v", Column<int32_t>(ElementType::kInt32, {-16777217}), ElementType::kFloat32)
                .find("int32 value -16777217 does not"),
            std::string::npos);
}

TEST(ConvertExactly, RefusesWhatItCannotRead) {
  EXPECT_NE(ErrorOf("b", Column<uint8_t>(ElementType::kBool, {1}), ElementType::kFloat32)
                .find("column 'b' must be numeric; got bool"),
            std::string::npos);
  HostTensor short_buffer = Column<int64_t>(ElementType::kInt64, {1, 2});
  short_buffer.shape = {3};
  EXPECT_NE(ErrorOf("s", short_buffer, ElementType::kFloat32).find("column 's': shape [3]"),
            std::string::npos);
  HostTensor empty = ConvertExactly("e", Column<int32_t>(ElementType::kInt32, {}),
                                    ElementType::kFloat64);
  EXPECT_EQ(empty.shape, std::vector<int64_t>({0}));
  EXPECT_EQ(empty.byte_size, 0u);
}

TEST(ConvertExactly, ReadsUnalignedBuffers) {
  // A gRPC request's raw contents carry no alignment promise.
  auto storage = std::make_shared<std::vector<uint8_t>>(1 + 2 * sizeof(int64_t));
  const int64_t values[2] = {5, -6};
  std::memcpy(storage->data() + 1, values, sizeof(values));
  HostTensor t;
  t.type = ElementType::kInt64;
  t.shape = {2};
  t.data = storage->data() + 1;
  t.byte_size = sizeof(values);
  t.owner = storage;
  EXPECT_EQ(Values<double>(ConvertExactly("u", t, ElementType::kFloat64)),
            std::vector<double>({5.0, -6.0}));
}

}  // namespace
}  // namespace engine
