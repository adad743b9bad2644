#include "request_pool.h"

#include <utility>

namespace engine {

std::unique_ptr<QueuedRequest> RequestPool::Take() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (!kept_.empty()) {
      std::unique_ptr<QueuedRequest> r = std::move(kept_.back());
      kept_.pop_back();
      return r;
    }
  }
  return std::make_unique<QueuedRequest>();
}

void RequestPool::Return(std::vector<std::unique_ptr<QueuedRequest>>& spent) {
  // Reset outside the lock: dropping an InferRequest runs the caller's destructors.
  for (auto& r : spent) {
    if (r == nullptr) continue;
    r->request.reset();
    r->seq = 0;
    r->bound_inputs.clear();  // clear() keeps the capacity: the point of keeping them
    r->output_indices.clear();
    r->batch_key.clear();
    r->rows = 1;
    r->enqueue_us = 0;
    r->deadline_us = 0;
    r->result.status = Status();
    r->result.outputs.clear();  // drops the views of the batch's buffers; keeps the capacity
    r->result.timings = RequestTimings{};
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto& r : spent) {
      if (kept_.size() >= kMaxKept) break;
      if (r != nullptr) kept_.push_back(std::move(r));
    }
  }
  spent.clear();  // frees those beyond kMaxKept
}

}  // namespace engine
