#include "batch_queue.h"

#include <algorithm>

namespace engine {

namespace {
// Bounds the scan for compatible requests so batch formation stays cheap with deep queues.
constexpr size_t kMaxScan = 4096;
// Priority levels kept when they empty, so that a queue that drains every batch does not
// free and rebuild its level (a map node and a deque) each time. Beyond this many levels,
// an emptied one is erased: priorities are arbitrary integers and must not pile up.
constexpr size_t kKeptLevels = 4;
}  // namespace

BatchQueue::BatchQueue(BatchingPolicy policy) : policy_(std::move(policy)) {
  std::sort(policy_.preferred_batch_rows.begin(), policy_.preferred_batch_rows.end());
  wake_rows_ = policy_.max_batch_rows;
  if (!policy_.preferred_batch_rows.empty()) {
    wake_rows_ = std::min<int64_t>(wake_rows_, policy_.preferred_batch_rows.front());
  }
}

bool BatchQueue::WorthWaking() const {
  return size_ == 1 || !policy_.enabled || policy_.max_queue_delay_us == 0 ||
         queued_rows_ >= wake_rows_ || pushed_earliest_run_by_;
}

int64_t BatchQueue::RunByUs(const QueuedRequest& r) {
  return r.deadline_us - DeadlineLeadUs(r.deadline_us - r.enqueue_us);
}

std::unique_ptr<QueuedRequest> BatchQueue::Push(std::unique_ptr<QueuedRequest> r) {
  pushed_earliest_run_by_ = false;
  if (size_ >= policy_.max_queue_size) return r;
  if (r->deadline_us > 0) {
    deadlines_.insert(r->deadline_us);
    const int64_t run_by = RunByUs(*r);
    pushed_earliest_run_by_ = run_by_.empty() || run_by < *run_by_.begin();
    run_by_.insert(run_by);
  }
  queued_rows_ += r->rows;
  levels_[r->request->priority].push_back(std::move(r));
  ++size_;
  return nullptr;
}

std::unique_ptr<QueuedRequest> BatchQueue::Detach(int priority, size_t index) {
  auto level = levels_.find(priority);
  auto& queue = level->second;
  std::unique_ptr<QueuedRequest> r = std::move(queue[index]);
  if (index == 0) {
    queue.pop_front();
  } else {
    queue.erase(queue.begin() + static_cast<std::ptrdiff_t>(index));
  }
  EraseIfSpare(level);
  Forget(*r);
  return r;
}

void BatchQueue::EraseIfSpare(Levels::iterator level) {
  if (level->second.empty() && levels_.size() > kKeptLevels) levels_.erase(level);
}

std::unique_ptr<QueuedRequest> BatchQueue::DetachFront(Levels::iterator level) {
  auto& queue = level->second;
  std::unique_ptr<QueuedRequest> r = std::move(queue.front());
  queue.pop_front();
  Forget(*r);
  return r;
}

void BatchQueue::Forget(const QueuedRequest& r) {
  if (r.deadline_us > 0) {
    deadlines_.erase(deadlines_.find(r.deadline_us));
    run_by_.erase(run_by_.find(RunByUs(r)));
  }
  --size_;
  queued_rows_ -= r.rows;
}

BatchQueue::Levels::iterator BatchQueue::HeadLevel() {
  auto level = levels_.begin();
  while (level != levels_.end() && level->second.empty()) ++level;
  return level;
}

std::unique_ptr<QueuedRequest> BatchQueue::Remove(uint64_t seq) {
  for (auto& [priority, queue] : levels_) {
    for (size_t i = 0; i < queue.size(); ++i) {
      if (queue[i]->seq == seq) return Detach(priority, i);
    }
  }
  return nullptr;
}

QueuedBatch BatchQueue::TakeExpired(int64_t now_us) {
  QueuedBatch expired;
  if (deadlines_.empty() || *deadlines_.begin() > now_us) return expired;
  for (auto level = levels_.begin(); level != levels_.end();) {
    auto& queue = level->second;
    const int priority = level->first;
    ++level;  // Detach may erase the level we are on
    for (size_t i = 0; i < queue.size();) {
      if (queue[i]->deadline_us > 0 && queue[i]->deadline_us <= now_us) {
        expired.push_back(Detach(priority, i));
        if (levels_.find(priority) == levels_.end()) break;
      } else {
        ++i;
      }
    }
  }
  return expired;
}

int64_t BatchQueue::NextDeadlineUs() const {
  return deadlines_.empty() ? kNever : *deadlines_.begin();
}

namespace {

using Candidates = BatchQueue::Candidates;

// Adds `r` at (priority, index) to `c` unless `c` is full; never skips ahead of a request
// that does not fit, which keeps FIFO order within a key.
void Consider(Candidates& c, const QueuedRequest& r, int priority, size_t index,
              int64_t max_rows) {
  if (c.full) return;
  if (c.rows + r.rows > max_rows) {
    c.full = true;
    return;
  }
  c.rows += r.rows;
  c.picks.emplace_back(priority, index);
  c.cumulative.push_back(c.rows);
  if (c.rows == max_rows) c.full = true;
}

// How many of a key's candidates are ready to run without waiting out the queue delay: a
// preferred size, a full batch, or a step past the largest preferred size; else 0.
size_t ReadyCount(const Candidates& c, const BatchingPolicy& policy) {
  // The largest preferred size that a prefix of the candidates fills exactly wins, even over
  // a full batch (as in Triton): with more requests in flight than a preferred size, batches
  // of that size keep one running while the previous one's callbacks resubmit.
  const auto& preferred = policy.preferred_batch_rows;  // sorted by the queue
  for (auto p = preferred.rbegin(); p != preferred.rend(); ++p) {
    auto it = std::find(c.cumulative.begin(), c.cumulative.end(), static_cast<int64_t>(*p));
    if (it != c.cumulative.end()) return static_cast<size_t>(it - c.cumulative.begin()) + 1;
  }
  if (c.full) return c.picks.size();
  // Rows that step past the largest preferred size without filling one exactly (requests of
  // several rows): the shortest prefix that reaches it runs now, as Triton sends a batch
  // once it reaches its largest preferred size, rather than waiting out the delay.
  if (!preferred.empty() && c.rows >= preferred.back()) {
    auto it = std::lower_bound(c.cumulative.begin(), c.cumulative.end(),
                               static_cast<int64_t>(preferred.back()));
    return static_cast<size_t>(it - c.cumulative.begin()) + 1;
  }
  return 0;
}

}  // namespace

QueuedBatch BatchQueue::TakeBatch(int64_t now_us, int64_t* wake_us) {
  *wake_us = kNever;
  QueuedBatch batch;
  if (size_ == 0) return batch;
  const auto head_level = HeadLevel();  // exists: size_ > 0
  const int head_priority = head_level->first;
  const QueuedRequest& head = *head_level->second.front();
  if (!policy_.enabled) {
    batch.push_back(Detach(head_priority, 0));
    return batch;
  }
  // The head's batch: the requests of its key in service order, while they fit.
  Candidates& chosen = head_candidates_;
  chosen.Clear();
  // Sized once: grown pick by pick, the two vectors took a dozen allocations per batch.
  const size_t expected = std::min<size_t>(
      {size_, kMaxScan, static_cast<size_t>(std::max<int64_t>(policy_.max_batch_rows, 1))});
  chosen.picks.reserve(expected);
  chosen.cumulative.reserve(expected);
  size_t scanned = 0;
  bool other_keys = false;  // the scan met a request of another key
  for (const auto& [priority, queue] : levels_) {
    for (size_t i = 0; i < queue.size() && scanned < kMaxScan && !chosen.full; ++i, ++scanned) {
      if (queue[i]->batch_key == head.batch_key) {
        Consider(chosen, *queue[i], priority, i, policy_.max_batch_rows);
      } else {
        other_keys = true;
      }
    }
    if (chosen.full || scanned >= kMaxScan) break;
  }
  size_t take = ReadyCount(chosen, policy_);
  // Waiting for company must not cost a queued request its deadline: the delay ends early,
  // at the earliest time by which a queued request must start (its deadline minus its lead).
  const int64_t due_us = std::min(head.enqueue_us + policy_.max_queue_delay_us,
                                  run_by_.empty() ? kNever : *run_by_.begin());
  if (take == 0 && now_us >= due_us) take = chosen.picks.size();
  if (take == 0 && other_keys) {
    // The head waits for company; requests of another key behind it that are ready now (a
    // preferred size, or a full batch) run meanwhile rather than wait out the head's delay
    // with an instance idle. The first ready key in service order, whatever its priority:
    // the head's batch is not ready to run either way.
    std::map<std::vector<int64_t>, Candidates> others;
    std::vector<const std::vector<int64_t>*> order;  // keys in order of first appearance
    scanned = 0;
    for (const auto& [priority, queue] : levels_) {
      for (size_t i = 0; i < queue.size() && scanned < kMaxScan; ++i, ++scanned) {
        const QueuedRequest& r = *queue[i];
        if (r.batch_key == head.batch_key) continue;
        auto [it, added] = others.try_emplace(r.batch_key);
        if (added) order.push_back(&it->first);
        Consider(it->second, r, priority, i, policy_.max_batch_rows);
      }
    }
    for (const std::vector<int64_t>* key : order) {
      Candidates& c = others.at(*key);
      if ((take = ReadyCount(c, policy_)) > 0) {
        chosen = std::move(c);
        break;
      }
    }
  }
  if (take == 0) {
    *wake_us = due_us;  // before any deadline, so expiry needs no earlier wake
    return batch;
  }
  auto& picks = chosen.picks;
  picks.resize(take);
  QueuedBatch taken(take);
  const int first_priority = picks.front().first;
  if (picks.back() == std::make_pair(first_priority, take - 1)) {
    // The usual case: the first `take` requests of one level, taken from the front.
    const auto level = levels_.find(first_priority);
    for (size_t k = 0; k < take; ++k) taken[k] = DetachFront(level);
    EraseIfSpare(level);
  } else {
    // Detach back to front within each level so earlier indices stay valid.
    for (size_t k = take; k-- > 0;) taken[k] = Detach(picks[k].first, picks[k].second);
  }
  return taken;
}

QueuedBatch BatchQueue::TakeAll() {
  QueuedBatch all;
  for (auto& [priority, queue] : levels_) {
    for (auto& r : queue) all.push_back(std::move(r));
  }
  levels_.clear();
  deadlines_.clear();
  run_by_.clear();
  size_ = 0;
  queued_rows_ = 0;
  return all;
}

}  // namespace engine
