// RequestPool: spent requests come back reset, with their vectors' capacity, up to kMaxKept.
#include "request_pool.h"

#include <gtest/gtest.h>

#include <thread>

namespace engine {
namespace {

// A request as Prepare leaves it: the caller's InferRequest (with a keepalive to watch) and
// filled vectors.
std::unique_ptr<QueuedRequest> Spent(const std::shared_ptr<int>& keepalive) {
  auto r = std::make_unique<QueuedRequest>();
  r->request = std::make_unique<InferRequest>();
  r->request->keepalive = keepalive;
  r->seq = 7;
  r->bound_inputs.assign(4, nullptr);
  r->output_indices = {0, 1, 2};
  r->batch_key = {3, -1, -2, 0};
  r->rows = 5;
  r->enqueue_us = 10;
  r->deadline_us = 20;
  r->result.status = Status(StatusCode::kInternal, "from the last run");
  r->result.outputs.emplace_back("y", HostTensor{});
  return r;
}

TEST(RequestPool, ReturnedRequestsComeBackResetWithTheirCapacity) {
  RequestPool pool;
  auto keepalive = std::make_shared<int>(1);
  QueuedBatch spent;
  spent.push_back(Spent(keepalive));
  const QueuedRequest* address = spent.front().get();
  ASSERT_EQ(keepalive.use_count(), 2);
  pool.Return(spent);
  EXPECT_TRUE(spent.empty());
  EXPECT_EQ(keepalive.use_count(), 1) << "the caller's request must be dropped on return";

  std::unique_ptr<QueuedRequest> r = pool.Take();
  EXPECT_EQ(r.get(), address);
  EXPECT_EQ(r->request, nullptr);
  EXPECT_EQ(r->seq, 0u);
  EXPECT_TRUE(r->bound_inputs.empty());
  EXPECT_GE(r->bound_inputs.capacity(), 4u);
  EXPECT_TRUE(r->output_indices.empty());
  EXPECT_GE(r->output_indices.capacity(), 3u);
  EXPECT_TRUE(r->batch_key.empty());
  EXPECT_GE(r->batch_key.capacity(), 4u);
  EXPECT_EQ(r->rows, 1);
  EXPECT_EQ(r->enqueue_us, 0);
  EXPECT_EQ(r->deadline_us, 0);
  EXPECT_TRUE(r->result.status.ok());
  EXPECT_TRUE(r->result.outputs.empty());
}

TEST(RequestPool, EmptyPoolMakesNewRequests) {
  RequestPool pool;
  std::unique_ptr<QueuedRequest> r = pool.Take();
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->request, nullptr);
  EXPECT_EQ(r->bound_inputs.capacity(), 0u);
}

TEST(RequestPool, KeepsAtMostItsBoundAndFreesTheRest) {
  RequestPool pool;
  auto keepalive = std::make_shared<int>(1);
  QueuedBatch spent;
  for (size_t i = 0; i < RequestPool::kMaxKept + 5; ++i) spent.push_back(Spent(keepalive));
  spent.push_back(nullptr);  // a slot whose request was moved out is skipped
  pool.Return(spent);
  EXPECT_TRUE(spent.empty());
  EXPECT_EQ(keepalive.use_count(), 1);
  size_t reused = 0;
  std::vector<std::unique_ptr<QueuedRequest>> taken;
  for (size_t i = 0; i < RequestPool::kMaxKept + 5; ++i) {
    taken.push_back(pool.Take());
    if (taken.back()->bound_inputs.capacity() > 0) ++reused;
  }
  EXPECT_EQ(reused, RequestPool::kMaxKept);
}

TEST(RequestPool, TakeAndReturnFromManyThreads) {
  RequestPool pool;
  auto keepalive = std::make_shared<int>(1);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        QueuedBatch spent;
        std::unique_ptr<QueuedRequest> r = pool.Take();
        ASSERT_EQ(r->request, nullptr);
        r->request = std::make_unique<InferRequest>();
        r->request->keepalive = keepalive;
        r->bound_inputs.push_back(nullptr);
        spent.push_back(std::move(r));
        pool.Return(spent);
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(keepalive.use_count(), 1);
}

}  // namespace
}  // namespace engine
