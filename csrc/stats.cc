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

ModelStats::ModelStats(int64_t common_rows)
    : dense_rows_(std::clamp<int64_t>(common_rows, 1, kMaxDenseRows)) {
  dense_.reset(new DenseSize[static_cast<size_t>(dense_rows_) + 1]);
}

void ModelStats::ObserveSuccess(int64_t rows, const RequestTimings& t) {
  CountRequest(Outcome::kOk);
  inferred_rows_.fetch_add(rows, kRelaxed);
  queue_us_.Observe(t.queue_us);
  compute_us_.Observe(t.compute_us);
  total_us_.Observe(t.total_us);
  input_ns_.fetch_add(t.input_ns, kRelaxed);
  infer_ns_.fetch_add(t.infer_ns, kRelaxed);
  output_ns_.fetch_add(t.output_ns, kRelaxed);
  const auto now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                          std::chrono::system_clock::now().time_since_epoch())
                          .count();
  last_inference_ms_.store(now_ms, kRelaxed);
}

void ModelStats::ObserveBatch(int64_t rows, int64_t compute_us, const RequestTimings& phases,
                              bool ok) {
  batches_.fetch_add(1, kRelaxed);
  if (!ok) {
    failed_batches_.fetch_add(1, kRelaxed);
    return;
  }
  rows = std::max<int64_t>(rows, 0);
  if (rows <= dense_rows_) {
    DenseSize& size = dense_[static_cast<size_t>(rows)];
    size.batches.fetch_add(1, kRelaxed);
    size.compute_us.fetch_add(compute_us, kRelaxed);
    size.input_ns.fetch_add(phases.input_ns, kRelaxed);
    size.infer_ns.fetch_add(phases.infer_ns, kRelaxed);
    size.output_ns.fetch_add(phases.output_ns, kRelaxed);
    return;
  }
  std::lock_guard<std::mutex> lock(large_mutex_);
  BatchSizeStats& size = large_[rows];
  size.rows = rows;
  size.batches += 1;
  size.compute_us += compute_us;
  size.input_ns += phases.input_ns;
  size.infer_ns += phases.infer_ns;
  size.output_ns += phases.output_ns;
}

StatsSnapshot ModelStats::Snapshot() const {
  StatsSnapshot s;
  for (size_t i = 0; i < requests_.size(); ++i) s.requests[i] = requests_[i].load(kRelaxed);
  s.batches = batches_.load(kRelaxed);
  s.failed_batches = failed_batches_.load(kRelaxed);
  s.inferred_rows = inferred_rows_.load(kRelaxed);
  for (int64_t rows = 0; rows <= dense_rows_; ++rows) {
    const DenseSize& size = dense_[static_cast<size_t>(rows)];
    const int64_t batches = size.batches.load(kRelaxed);
    if (batches == 0) continue;
    s.batch_sizes.push_back({rows, batches, size.compute_us.load(kRelaxed),
                             size.input_ns.load(kRelaxed), size.infer_ns.load(kRelaxed),
                             size.output_ns.load(kRelaxed)});
  }
  {
    std::lock_guard<std::mutex> lock(large_mutex_);
    for (const auto& [rows, size] : large_) s.batch_sizes.push_back(size);
  }
  s.input_ns = input_ns_.load(kRelaxed);
  s.infer_ns = infer_ns_.load(kRelaxed);
  s.output_ns = output_ns_.load(kRelaxed);
  s.queue_us = queue_us_.Snapshot();
  s.compute_us = compute_us_.Snapshot();
  s.total_us = total_us_.Snapshot();
  s.queue_depth = queue_depth_.load(kRelaxed);
  s.in_flight = in_flight_.load(kRelaxed);
  s.last_inference_ms = last_inference_ms_.load(kRelaxed);
  return s;
}

}  // namespace engine
