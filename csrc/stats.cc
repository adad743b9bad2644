#include "stats.h"

#include <algorithm>
#include <chrono>

namespace engine {

const char* OutcomeName(Outcome outcome) {
  switch (outcome) {
    case Outcome::kOk: return "ok";
    case Outcome::kInvalid: return "invalid";
    case Outcome::kOverloaded: return "overloaded";
    case Outcome::kExpired: return "expired";
    case Outcome::kCancelled: return "cancelled";
    case Outcome::kFailed: return "failed";
    case Outcome::kUnavailable: return "unavailable";
    case Outcome::kCount: break;
  }
  return "unknown";
}

void LatencyHistogram::Observe(int64_t value_us) {
  const auto it = std::lower_bound(kLatencyBoundsUs.begin(), kLatencyBoundsUs.end(), value_us);
  counts_[static_cast<size_t>(it - kLatencyBoundsUs.begin())].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value_us, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

HistogramSnapshot LatencyHistogram::Snapshot() const {
  HistogramSnapshot s;
  s.bounds.assign(kLatencyBoundsUs.begin(), kLatencyBoundsUs.end());
  for (const auto& c : counts_) s.counts.push_back(c.load(std::memory_order_relaxed));
  s.sum = sum_.load(std::memory_order_relaxed);
  s.count = count_.load(std::memory_order_relaxed);
  return s;
}

ModelStats::ModelStats(int max_batch_rows)
    : batch_rows_(new std::atomic<int64_t>[static_cast<size_t>(max_batch_rows) + 1]()),
      batch_compute_us_(new std::atomic<int64_t>[static_cast<size_t>(max_batch_rows) + 1]()),
      max_batch_rows_(max_batch_rows) {}

void ModelStats::ObserveSuccess(int64_t rows, int64_t queue_us, int64_t compute_us,
                                int64_t total_us) {
  CountRequest(Outcome::kOk);
  inferred_rows_.fetch_add(rows, kRelaxed);
  queue_us_.Observe(queue_us);
  compute_us_.Observe(compute_us);
  total_us_.Observe(total_us);
  const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  last_inference_ms_.store(now_ms, kRelaxed);
}

void ModelStats::ObserveBatch(int rows, int64_t compute_us) {
  batches_.fetch_add(1, kRelaxed);
  const int index = std::clamp(rows, 0, max_batch_rows_);
  batch_rows_[static_cast<size_t>(index)].fetch_add(1, kRelaxed);
  batch_compute_us_[static_cast<size_t>(index)].fetch_add(compute_us, kRelaxed);
}

StatsSnapshot ModelStats::Snapshot() const {
  StatsSnapshot s;
  for (size_t i = 0; i < requests_.size(); ++i) s.requests[i] = requests_[i].load(kRelaxed);
  s.batches = batches_.load(kRelaxed);
  s.inferred_rows = inferred_rows_.load(kRelaxed);
  for (int i = 0; i <= max_batch_rows_; ++i) {
    s.batch_rows.push_back(batch_rows_[static_cast<size_t>(i)].load(kRelaxed));
    s.batch_compute_us.push_back(batch_compute_us_[static_cast<size_t>(i)].load(kRelaxed));
  }
  s.queue_us = queue_us_.Snapshot();
  s.compute_us = compute_us_.Snapshot();
  s.total_us = total_us_.Snapshot();
  s.queue_depth = queue_depth_.load(kRelaxed);
  s.in_flight = in_flight_.load(kRelaxed);
  s.last_inference_ms = last_inference_ms_.load(kRelaxed);
  return s;
}

}  // namespace engine
