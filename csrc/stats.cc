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

namespace {

std::unique_ptr<std::atomic<int64_t>[]> Counters(int max_batch_rows) {
  return std::unique_ptr<std::atomic<int64_t>[]>(
      new std::atomic<int64_t>[static_cast<size_t>(max_batch_rows) + 1]());
}

}  // namespace

ModelStats::ModelStats(int max_batch_rows)
    : batch_rows_(Counters(max_batch_rows)),
      batch_compute_us_(Counters(max_batch_rows)),
      batch_input_ns_(Counters(max_batch_rows)),
      batch_infer_ns_(Counters(max_batch_rows)),
      batch_output_ns_(Counters(max_batch_rows)),
      max_batch_rows_(max_batch_rows) {}

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

void ModelStats::ObserveBatch(int rows, int64_t compute_us, const RequestTimings& phases) {
  batches_.fetch_add(1, kRelaxed);
  const auto index = static_cast<size_t>(std::clamp(rows, 0, max_batch_rows_));
  batch_rows_[index].fetch_add(1, kRelaxed);
  batch_compute_us_[index].fetch_add(compute_us, kRelaxed);
  batch_input_ns_[index].fetch_add(phases.input_ns, kRelaxed);
  batch_infer_ns_[index].fetch_add(phases.infer_ns, kRelaxed);
  batch_output_ns_[index].fetch_add(phases.output_ns, kRelaxed);
}

StatsSnapshot ModelStats::Snapshot() const {
  StatsSnapshot s;
  for (size_t i = 0; i < requests_.size(); ++i) s.requests[i] = requests_[i].load(kRelaxed);
  s.batches = batches_.load(kRelaxed);
  s.inferred_rows = inferred_rows_.load(kRelaxed);
  for (int i = 0; i <= max_batch_rows_; ++i) {
    s.batch_rows.push_back(batch_rows_[static_cast<size_t>(i)].load(kRelaxed));
    const auto n = static_cast<size_t>(i);
    s.batch_compute_us.push_back(batch_compute_us_[n].load(kRelaxed));
    s.batch_input_ns.push_back(batch_input_ns_[n].load(kRelaxed));
    s.batch_infer_ns.push_back(batch_infer_ns_[n].load(kRelaxed));
    s.batch_output_ns.push_back(batch_output_ns_[n].load(kRelaxed));
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
