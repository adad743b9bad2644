#include "batch_io.h"

#include <gtest/gtest.h>

#include <numeric>

namespace engine {
namespace {

HostTensor Rows(int64_t rows, int64_t cols, float start) {
  HostTensor t = AllocateHostTensor(ElementType::kFloat32, {rows, cols});
  auto* v = static_cast<float*>(MutableData(t));
  std::iota(v, v + rows * cols, start);
  return t;
}

TEST(BatchIo, GatherConcatenatesAlongDimZero) {
  HostTensor a = Rows(2, 3, 0), b = Rows(1, 3, 100);
  HostTensor batch = Gather({&a, &b});
  EXPECT_EQ(batch.shape, (std::vector<int64_t>{3, 3}));
  const auto* v = static_cast<const float*>(batch.data);
  EXPECT_EQ(v[0], 0);
  EXPECT_EQ(v[5], 5);
  EXPECT_EQ(v[6], 100);
  EXPECT_EQ(v[8], 102);
}

TEST(BatchIo, GatherOfOneDoesNotCopy) {
  HostTensor a = Rows(2, 3, 0);
  HostTensor same = Gather({&a});
  EXPECT_EQ(same.data, a.data);
}

TEST(BatchIo, ScatterMakesViewsSharingTheOwner) {
  HostTensor whole = Rows(5, 2, 0);
  std::vector<HostTensor> pieces;
  ASSERT_TRUE(Scatter(whole, {2, 3}, &pieces));
  ASSERT_EQ(pieces.size(), 2u);
  EXPECT_EQ(pieces[0].shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(pieces[1].shape, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(static_cast<const float*>(pieces[1].data)[0], 4);
  EXPECT_EQ(pieces[1].owner, whole.owner);
  EXPECT_EQ(pieces[1].byte_size, 24u);
}

TEST(BatchIo, ScatterRefusesMismatchedRows) {
  HostTensor whole = Rows(5, 2, 0);
  std::vector<HostTensor> pieces;
  EXPECT_FALSE(Scatter(whole, {2, 2}, &pieces));
  HostTensor scalar = AllocateHostTensor(ElementType::kFloat32, {});
  EXPECT_FALSE(Scatter(scalar, {1}, &pieces));
}

TEST(BatchIo, StringsGatherAndScatter) {
  HostTensor a, b;
  a.type = b.type = ElementType::kString;
  a.shape = {1, 2};
  a.strings = {"x", "y"};
  b.shape = {2, 2};
  b.strings = {"p", "q", "r", ""};
  HostTensor batch = Gather({&a, &b});
  EXPECT_EQ(batch.strings, (std::vector<std::string>{"x", "y", "p", "q", "r", ""}));
  std::vector<HostTensor> pieces;
  ASSERT_TRUE(Scatter(batch, {1, 2}, &pieces));
  EXPECT_EQ(pieces[1].strings, (std::vector<std::string>{"p", "q", "r", ""}));
}

}  // namespace
}  // namespace engine
