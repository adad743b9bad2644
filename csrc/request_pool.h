// Spent QueuedRequests kept for the next submits, with the capacity of their vectors.
#pragma once

#include <cstddef>
#include <memory>
#include <mutex>
#include <vector>

#include "batch_queue.h"

namespace engine {

// Why: requests are allocated on the submitting thread (a server's reactor, Python's) and
// freed on the completion thread. glibc serves a thread's allocations from its own cache
// only with chunks that thread freed, so every request's allocations (the QueuedRequest and
// its vectors) took malloc's slow path on one thread and free's on the other: a quarter of
// the completion CPU in batcher_bench. A request handed back here is reused whole instead.
// Thread-safe.
class RequestPool {
 public:
  // A reset request: a kept one, or a new one when none is kept.
  std::unique_ptr<QueuedRequest> Take();
  // Resets each request of `spent` (dropping its InferRequest, and with it the caller's
  // callback, keepalive and notifier: call it after the callbacks and notifies) and keeps
  // it, up to kMaxKept requests; clears `spent`.
  void Return(std::vector<std::unique_ptr<QueuedRequest>>& spent);
  // Kept for reuse: a burst's worth; beyond it requests are freed as before.
  static constexpr size_t kMaxKept = 1024;

 private:
  std::mutex mutex_;
  std::vector<std::unique_ptr<QueuedRequest>> kept_;  // guarded by mutex_
};

}  // namespace engine
