// OutputBufferPool: dropped buffers come back for the next batch, within its bounds.
#include "output_buffers.h"

#include <gtest/gtest.h>

#include <cstring>
#include <thread>
#include <vector>

namespace engine {
namespace {

TEST(OutputBufferPool, ADroppedBufferIsTakenAgain) {
  auto pool = OutputBufferPool::Create();
  std::shared_ptr<uint8_t> first = pool->Take(120);
  ASSERT_NE(first, nullptr);
  std::memset(first.get(), 7, 120);  // all of it is writable
  const uint8_t* address = first.get();
  std::shared_ptr<uint8_t> view = first;  // a request's slice shares the buffer
  first.reset();
  EXPECT_EQ(pool->kept(), 0u) << "returned while a view still holds it";
  view.reset();
  EXPECT_EQ(pool->kept(), 1u);
  // A batch of a few more rows fits the same buffer (capacities are rounded up).
  std::shared_ptr<uint8_t> again = pool->Take(128);
  EXPECT_EQ(again.get(), address);
  EXPECT_EQ(pool->kept(), 0u);
}

TEST(OutputBufferPool, ZeroBytesStillGetsABuffer) {
  auto pool = OutputBufferPool::Create();
  EXPECT_NE(pool->Take(0), nullptr);  // ORT refuses a null buffer, even for 0 elements
}

TEST(OutputBufferPool, TheSmallestBufferThatFitsIsTaken) {
  auto pool = OutputBufferPool::Create();
  std::shared_ptr<uint8_t> small = pool->Take(100), large = pool->Take(5000);
  const uint8_t* small_address = small.get();
  const uint8_t* large_address = large.get();
  small.reset();
  large.reset();
  ASSERT_EQ(pool->kept(), 2u);
  EXPECT_EQ(pool->Take(50).get(), small_address);
  EXPECT_EQ(pool->Take(4000).get(), large_address);
  std::shared_ptr<uint8_t> larger = pool->Take(10000);  // nothing kept fits: a new one
  EXPECT_NE(larger.get(), large_address);
}

TEST(OutputBufferPool, KeepsAtMostItsBound) {
  auto pool = OutputBufferPool::Create();
  std::vector<std::shared_ptr<uint8_t>> taken;
  for (size_t i = 0; i < OutputBufferPool::kMaxKept + 5; ++i) taken.push_back(pool->Take(64));
  taken.clear();
  EXPECT_EQ(pool->kept(), OutputBufferPool::kMaxKept);
}

TEST(OutputBufferPool, LargeBuffersAreNotKept) {
  auto pool = OutputBufferPool::Create();
  std::shared_ptr<uint8_t> large = pool->Take(OutputBufferPool::kMaxPooledBytes + 1);
  ASSERT_NE(large, nullptr);
  large.get()[OutputBufferPool::kMaxPooledBytes] = 1;  // all of it is there
  large.reset();
  EXPECT_EQ(pool->kept(), 0u);
}

TEST(OutputBufferPool, ABufferMayOutliveThePoolsOwner) {
  auto pool = OutputBufferPool::Create();
  std::shared_ptr<uint8_t> buffer = pool->Take(64);
  pool.reset();  // the model closed; a caller still holds a result
  buffer.get()[63] = 1;
  buffer.reset();  // returns to the pool it kept alive, which then goes
}

TEST(OutputBufferPool, BuffersDroppedOnOtherThreadsComeBack) {
  auto pool = OutputBufferPool::Create();
  constexpr int kThreads = 4, kPerThread = 300;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&pool, t] {
      for (int i = 0; i < kPerThread; ++i) {
        std::shared_ptr<uint8_t> buffer = pool->Take(static_cast<size_t>(64 * (1 + i % 3)));
        buffer.get()[0] = static_cast<uint8_t>(t);
        // Dropped on another thread, as callers drop results the worker's run wrote.
        std::thread([b = std::move(buffer)]() mutable { b.reset(); }).join();
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_GE(pool->kept(), 1u);
  EXPECT_LE(pool->kept(), OutputBufferPool::kMaxKept);
}

}  // namespace
}  // namespace engine
