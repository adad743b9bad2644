// The dynamic batcher's queue and batching policy: pure data structure, no threads, no clock.
//
// The caller (Model) holds its own mutex around every call and passes the current time in, so
// the policy is tested by handing it times directly. Invariants:
//  - requests are kept per priority level, highest level first, FIFO within a level;
//  - a request is never split: a batch holds whole requests whose `batch_key` (non-batch dims
//    and selected outputs) equals that of the oldest request of the highest priority (the head);
//  - a batch never holds more than `max_batch_rows` rows;
//  - a batch runs as soon as a prefix of the compatible requests fills a preferred size (the
//    largest such) or steps past the largest one, else when it is full, else when the head
//    has waited max_queue_delay_us, or DeadlineLeadUs(timeout) before the deadline of any
//    queued request if that is sooner: the queue delay never holds a request until its
//    deadline passes;
//  - while the head's batch waits for company, a batch of another key that is ready by the
//    rules above (not by the delay) runs meanwhile: one request of another shape at the head
//    does not hold back the requests behind it.
#pragma once

#include <algorithm>
#include <cstdint>
#include <deque>
#include <limits>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "request.h"

namespace engine {

struct BatchingPolicy {
  bool enabled = true;              // false: every request is a batch of its own
  int max_batch_rows = 64;          // >= 1
  std::vector<int> preferred_batch_rows;  // each in [1, max_batch_rows]
  int64_t max_queue_delay_us = 0;   // 0 = run what is there as soon as an instance is free
  size_t max_queue_size = 1024;     // queued requests beyond this are refused (retryable)
};

// A validated request waiting in the queue.
struct QueuedRequest {
  uint64_t seq = 0;                 // unique per model, assigned at submit
  std::unique_ptr<InferRequest> request;
  std::vector<const HostTensor*> bound_inputs;  // in signature order, into request->inputs
  std::vector<size_t> output_indices;           // positions in the model's outputs
  int64_t rows = 1;
  int64_t enqueue_us = 0;
  int64_t deadline_us = 0;          // 0 = none
  // Non-batch dims of every input, then the selected outputs: equal keys may share a batch.
  std::vector<int64_t> batch_key;
  // Filled by the run, delivered by the completion. Kept here rather than in an array per
  // batch: an array of results is a multi-kilobyte allocation per batch, and glibc answers
  // allocations that large by consolidating its free lists (malloc_consolidate was 8% of
  // the completion thread's samples in batcher_bench before this).
  InferResult result;
};

using QueuedBatch = std::vector<std::unique_ptr<QueuedRequest>>;

class BatchQueue {
 public:
  static constexpr int64_t kNever = std::numeric_limits<int64_t>::max();
  // How long before its deadline a queued request's batch starts when the queue delay would
  // otherwise hold it past the deadline: room for the worker's wake-up (which a busy machine
  // can delay by milliseconds) and the run to begin. A fifth of its timeout, at least 1 ms.
  static int64_t DeadlineLeadUs(int64_t timeout_us) {
    return std::max<int64_t>(kMinDeadlineLeadUs, timeout_us / 5);
  }
  static constexpr int64_t kMinDeadlineLeadUs = 1000;

  explicit BatchQueue(BatchingPolicy policy);

  // Adds `r`. Returns it back (non-null) when the queue is full; the caller refuses it.
  std::unique_ptr<QueuedRequest> Push(std::unique_ptr<QueuedRequest> r);

  // Removes the request with this seq; nullptr when it is not queued (running or done).
  std::unique_ptr<QueuedRequest> Remove(uint64_t seq);

  // Removes every request whose deadline is <= now_us.
  QueuedBatch TakeExpired(int64_t now_us);

  // The batch to run now, or empty. When empty, *wake_us is the earliest time at which the
  // answer may change without a new request (the queue delay ends, or a deadline draws within
  // its lead), or kNever.
  QueuedBatch TakeBatch(int64_t now_us, int64_t* wake_us);

  // Removes everything (shutdown).
  QueuedBatch TakeAll();

  // Earliest deadline of a queued request, or kNever.
  int64_t NextDeadlineUs() const;

  // After a Push: whether a worker waiting on this queue should wake, because a batch may be
  // ready now (enough rows for the smallest preferred or the max size, or no queue delay),
  // because the queue was empty and its delay timer must start, or because the new request
  // must start before the time the worker sleeps until (its deadline is nearer). False only
  // when waking could not change the worker's decision.
  bool WorthWaking() const;

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  const BatchingPolicy& policy() const { return policy_; }

  // The requests of one batch key in service order, as far as they fit in a batch (a
  // working set of TakeBatch; public for the policy helpers beside it).
  struct Candidates {
    std::vector<std::pair<int, size_t>> picks;  // (priority, index in its level)
    std::vector<int64_t> cumulative;            // rows up to and including each pick
    int64_t rows = 0;
    bool full = false;  // a next request of the key does not fit, or max rows reached
    void Clear() {
      picks.clear();
      cumulative.clear();
      rows = 0;
      full = false;
    }
  };
 private:
  using Levels = std::map<int, std::deque<std::unique_ptr<QueuedRequest>>, std::greater<int>>;
  std::unique_ptr<QueuedRequest> Detach(int priority, size_t index);
  // Detach(level's priority, 0) without looking the level up again; the level stays.
  std::unique_ptr<QueuedRequest> DetachFront(Levels::iterator level);
  void Forget(const QueuedRequest& r);  // the bookkeeping of a request that leaves
  // Erases `level` if it is empty and more than kKeptLevels levels exist.
  void EraseIfSpare(Levels::iterator level);
  // The highest priority level that holds a request (levels may be kept empty), or end().
  Levels::iterator HeadLevel();

  BatchingPolicy policy_;
  Levels levels_;  // highest priority first; a level may be empty
  // When a request's batch must start at the latest (deadline minus its lead).
  static int64_t RunByUs(const QueuedRequest& r);
  std::multiset<int64_t> deadlines_;
  std::multiset<int64_t> run_by_;  // RunByUs of each request with a deadline
  bool pushed_earliest_run_by_ = false;  // the last Push brought the earliest run_by_ forward
  size_t size_ = 0;
  int64_t queued_rows_ = 0;
  // The head key's candidates, kept between TakeBatch calls for their capacity: the worker
  // calls it once per batch, and two allocations per call showed in its profile.
  Candidates head_candidates_;
  int64_t wake_rows_ = 0;  // rows at which a batch may be ready without waiting out the delay
};

}  // namespace engine
