// Per-model statistics: lock-free counters on the hot path, a plain snapshot on read.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "request.h"

namespace engine {

enum class Outcome : int {
  kOk = 0,
  kInvalid,      // refused by validation
  kOverloaded,   // refused: queue full
  kExpired,      // deadline passed while queued; never ran
  kCancelled,    // cancelled while queued; never ran
  kFailed,       // ONNX Runtime failed on it
  kUnavailable,  // refused or failed because the model was closing
  kCount,
};
const char* OutcomeName(Outcome outcome);

// Latency buckets (upper bounds, microseconds); the last bucket is +Inf.
inline constexpr std::array<int64_t, 18> kLatencyBoundsUs = {
    25,    50,     100,    250,    500,     1000,    2500,    5000,     10000,
    25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000};

struct HistogramSnapshot {
  std::vector<int64_t> bounds;   // upper bounds; counts has one more entry (+Inf)
  std::vector<int64_t> counts;   // per bucket, not cumulative
  int64_t sum = 0;               // sum of observed values
  int64_t count = 0;
};

class LatencyHistogram {
 public:
  void Observe(int64_t value_us);
  HistogramSnapshot Snapshot() const;

 private:
  std::array<std::atomic<int64_t>, kLatencyBoundsUs.size() + 1> counts_{};
  std::atomic<int64_t> sum_{0};
  std::atomic<int64_t> count_{0};
};

struct StatsSnapshot {
  std::array<int64_t, static_cast<size_t>(Outcome::kCount)> requests{};  // by Outcome
  int64_t batches = 0;         // ORT runs of the batcher (isolation re-runs included)
  int64_t inferred_rows = 0;   // rows of successful requests
  std::vector<int64_t> batch_rows;        // [n] = batches of n rows, n in 0..max_batch_size
  std::vector<int64_t> batch_compute_us;  // [n] = compute time summed over those batches
  // [n] = each phase (see RequestTimings) summed over the batches of n rows, nanoseconds.
  std::vector<int64_t> batch_input_ns, batch_infer_ns, batch_output_ns;
  // Each phase of a successful request's batch, summed over successful requests (ns).
  int64_t input_ns = 0, infer_ns = 0, output_ns = 0;
  HistogramSnapshot queue_us, compute_us, total_us;
  int64_t queue_depth = 0;     // requests waiting now
  int64_t in_flight = 0;       // requests submitted and not yet completed
  int64_t last_inference_ms = 0;  // wall clock of the last success (ms since the Unix epoch)
};

class ModelStats {
 public:
  explicit ModelStats(int max_batch_rows);

  void CountRequest(Outcome outcome) { requests_[static_cast<size_t>(outcome)].fetch_add(1, kRelaxed); }
  // `t` carries the request's queue, compute and total times and its batch's phases.
  void ObserveSuccess(int64_t rows, const RequestTimings& t);
  void ObserveBatch(int rows, int64_t compute_us, const RequestTimings& phases);
  void AddInFlight(int64_t delta) { in_flight_.fetch_add(delta, kRelaxed); }
  void SetQueueDepth(int64_t depth) { queue_depth_.store(depth, kRelaxed); }

  StatsSnapshot Snapshot() const;

 private:
  static constexpr std::memory_order kRelaxed = std::memory_order_relaxed;
  std::array<std::atomic<int64_t>, static_cast<size_t>(Outcome::kCount)> requests_{};
  std::atomic<int64_t> batches_{0};
  std::atomic<int64_t> inferred_rows_{0};
  std::unique_ptr<std::atomic<int64_t>[]> batch_rows_;
  std::unique_ptr<std::atomic<int64_t>[]> batch_compute_us_;
  std::unique_ptr<std::atomic<int64_t>[]> batch_input_ns_, batch_infer_ns_, batch_output_ns_;
  std::atomic<int64_t> input_ns_{0}, infer_ns_{0}, output_ns_{0};
  int max_batch_rows_;
  LatencyHistogram queue_us_, compute_us_, total_us_;
  std::atomic<int64_t> queue_depth_{0};
  std::atomic<int64_t> in_flight_{0};
  std::atomic<int64_t> last_inference_ms_{0};
};

}  // namespace engine
