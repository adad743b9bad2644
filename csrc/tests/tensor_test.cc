#include "tensor.h"

#include <gtest/gtest.h>

#include <limits>

#include "element_type.h"

namespace engine {
namespace {

TEST(ElementType, SizesAndNames) {
  EXPECT_EQ(ElementSize(ElementType::kFloat32), 4u);
  EXPECT_EQ(ElementSize(ElementType::kFloat16), 2u);
  EXPECT_EQ(ElementSize(ElementType::kBool), 1u);
  EXPECT_EQ(ElementSize(ElementType::kUInt64), 8u);
  EXPECT_EQ(ElementSize(ElementType::kString), 0u);
  EXPECT_STREQ(ElementTypeName(ElementType::kFloat64), "float64");
  EXPECT_STREQ(ElementTypeName(ElementType::kString), "string");
  EXPECT_EQ(ElementTypeFromOnnx(1), ElementType::kFloat32);
  EXPECT_EQ(ElementTypeFromOnnx(14), ElementType::kUndefined);  // complex64: unsupported
  EXPECT_EQ(ElementTypeFromOnnx(-3), ElementType::kUndefined);
  EXPECT_FALSE(IsSupported(ElementType::kUndefined));
  EXPECT_TRUE(IsSupported(ElementType::kBool));
}

TEST(Tensor, CheckedElementCount) {
  EXPECT_EQ(CheckedElementCount({}, 100), 1);
  EXPECT_EQ(CheckedElementCount({2, 3, 4}, 100), 24);
  EXPECT_EQ(CheckedElementCount({0, 5}, 100), 0);
  EXPECT_EQ(CheckedElementCount({5, -1}, 100), -1);
  EXPECT_EQ(CheckedElementCount({0, -1}, 100), -1);  // a negative dim is bad even when empty
  EXPECT_EQ(CheckedElementCount({11, 10}, 100), -1);
  const int64_t big = std::numeric_limits<int64_t>::max() / 2;
  EXPECT_EQ(CheckedElementCount({big, 4}, std::numeric_limits<int64_t>::max()), -1);
}

TEST(Tensor, AllocateOwnsZeroedMemory) {
  HostTensor t = AllocateHostTensor(ElementType::kInt32, {3, 2});
  ASSERT_NE(t.data, nullptr);
  EXPECT_EQ(t.byte_size, 24u);
  EXPECT_EQ(t.element_count(), 6);
  EXPECT_EQ(t.rows(), 3);
  const auto* values = static_cast<const int32_t*>(t.data);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(values[i], 0);
  HostTensor empty = AllocateHostTensor(ElementType::kFloat32, {0, 4});
  EXPECT_NE(empty.data, nullptr);  // never null, ORT refuses null buffers
  EXPECT_EQ(empty.byte_size, 0u);
  HostTensor strings = AllocateHostTensor(ElementType::kString, {2, 2});
  EXPECT_EQ(strings.strings.size(), 4u);
  EXPECT_EQ(ShapeToString({2, -1}), "[2, -1]");
}

}  // namespace
}  // namespace engine
