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

TEST(BatchIo, SliceRowsMakesViewsSharingTheOwner) {
  HostTensor whole = Rows(5, 2, 0);
  HostTensor first = SliceRows(whole, 0, 2), rest = SliceRows(whole, 2, 3);
  EXPECT_EQ(first.shape, (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(rest.shape, (std::vector<int64_t>{3, 2}));
  EXPECT_EQ(static_cast<const float*>(first.data)[0], 0);
  EXPECT_EQ(static_cast<const float*>(rest.data)[0], 4);
  EXPECT_EQ(rest.owner, whole.owner);
  EXPECT_EQ(rest.byte_size, 24u);
}

TEST(BatchIo, SplitsIntoRowsChecksDimZero) {
  HostTensor whole = Rows(5, 2, 0);
  EXPECT_TRUE(SplitsIntoRows(whole, 5));
  EXPECT_FALSE(SplitsIntoRows(whole, 4));
  HostTensor scalar = AllocateHostTensor(ElementType::kFloat32, {});
  EXPECT_FALSE(SplitsIntoRows(scalar, 1));
}

TEST(BatchIo, StringsGatherAndSlice) {
  HostTensor a, b;
  a.type = b.type = ElementType::kString;
  a.shape = {1, 2};
  a.strings = {"x", "y"};
  b.shape = {2, 2};
  b.strings = {"p", "q", "r", ""};
  HostTensor batch = Gather({&a, &b});
  EXPECT_EQ(batch.strings, (std::vector<std::string>{"x", "y", "p", "q", "r", ""}));
  EXPECT_EQ(SliceRows(batch, 1, 2).strings, (std::vector<std::string>{"p", "q", "r", ""}));
}

}  // namespace
}  // namespace engine
