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

// A small result of a large batch is a copy: a view would keep the whole batch buffer alive
// for as long as the caller keeps the result.
TEST(BatchIo, SmallSlicesOfALargeBufferAreCopies) {
  const int64_t cols = 1024;  // 4 KiB rows: 300 rows are over 1 MiB
  HostTensor whole = Rows(300, cols, 0);
  ASSERT_GE(whole.byte_size, kCopySlicesOfBytes);
  HostTensor one = SliceRows(whole, 7, 1);
  EXPECT_NE(one.owner, whole.owner);
  EXPECT_NE(one.data, whole.data);
  EXPECT_EQ(one.shape, (std::vector<int64_t>{1, cols}));
  EXPECT_EQ(one.byte_size, size_t{4} * cols);
  EXPECT_EQ(static_cast<const float*>(one.data)[0], 7.0f * cols);
  EXPECT_EQ(static_cast<const float*>(one.data)[cols - 1], 8.0f * cols - 1);
  HostTensor most = SliceRows(whole, 0, 200);  // most of the buffer: still a view
  EXPECT_EQ(most.owner, whole.owner);
  std::weak_ptr<const void> buffer = whole.owner;
  whole = HostTensor{};
  most = HostTensor{};
  EXPECT_TRUE(buffer.expired());  // the copy does not hold the batch buffer
  EXPECT_EQ(static_cast<const float*>(one.data)[0], 7.0f * cols);
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
