// Per-model statistics: lock-free counters on the hot path, a plain snapshot on read.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
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

// The batches that ran with one number of rows.
struct BatchSizeStats {
  int64_t rows = 0;
  int64_t batches = 0;
  int64_t compute_us = 0;  // summed over those batches
  // Each phase (see RequestTimings) summed over those batches, nanoseconds.
  int64_t input_ns = 0, infer_ns = 0, output_ns = 0;
};

struct StatsSnapshot {
  std::array<int64_t, static_cast<size_t>(Outcome::kCount)> requests{};  // by Outcome
  int64_t batches = 0;         // ORT runs of the batcher (isolation re-runs included)
  // Of those, runs that failed: ORT's error, or outputs that did not split into the batch's
  // rows (batch_sizes counts the others).
  int64_t failed_batches = 0;
  int64_t inferred_rows = 0;   // rows of successful requests
  std::vector<BatchSizeStats> batch_sizes;  // each size that ran successfully, ascending rows
  // Each phase of a successful request's batch, summed over successful requests (ns).
  int64_t input_ns = 0, infer_ns = 0, output_ns = 0;
  HistogramSnapshot queue_us, compute_us, total_us;
  int64_t queue_depth = 0;     // requests waiting now
  int64_t in_flight = 0;       // requests submitted and not yet completed
  int64_t last_inference_ms = 0;  // wall clock of the last success (ms since the Unix epoch)
};

class ModelStats {
 public:
  // Batches of up to `common_rows` rows (clamped to [1, kMaxDenseRows]) are counted without a
  // lock; larger ones, which run long enough for a lock not to matter, under one. So the
  // memory and the snapshot's cost do not grow with a large max_batch_size, and a model
  // without batching counts each request's true size.
  explicit ModelStats(int64_t common_rows);
  static constexpr int64_t kMaxDenseRows = 1024;

  void CountRequest(Outcome outcome) { requests_[static_cast<size_t>(outcome)].fetch_add(1, kRelaxed); }
  // `t` carries the request's queue, compute and total times and its batch's phases.
  void ObserveSuccess(int64_t rows, const RequestTimings& t);
  // A run of the batcher; a failed one (`ok` false) counts as a batch and a failed batch only,
  // not in its size's stats: those describe executions that produced outputs (Triton's
  // batch_stats), which a failure's time would distort.
  void ObserveBatch(int64_t rows, int64_t compute_us, const RequestTimings& phases,
                    bool ok = true);
  void AddInFlight(int64_t delta) { in_flight_.fetch_add(delta, kRelaxed); }
  int64_t InFlight() const { return in_flight_.load(kRelaxed); }
  void SetQueueDepth(int64_t depth) { queue_depth_.store(depth, kRelaxed); }

  StatsSnapshot Snapshot() const;

 private:
  static constexpr std::memory_order kRelaxed = std::memory_order_relaxed;
  std::array<std::atomic<int64_t>, static_cast<size_t>(Outcome::kCount)> requests_{};
  std::atomic<int64_t> batches_{0};
  std::atomic<int64_t> failed_batches_{0};
  std::atomic<int64_t> inferred_rows_{0};
  // One slot per batch size in [0, dense_rows_]: lock-free.
  struct DenseSize {
    std::atomic<int64_t> batches{0}, compute_us{0}, input_ns{0}, infer_ns{0}, output_ns{0};
  };
  std::unique_ptr<DenseSize[]> dense_;
  int64_t dense_rows_;
  // Sizes above dense_rows_, guarded by large_mutex_.
  mutable std::mutex large_mutex_;
  std::map<int64_t, BatchSizeStats> large_;
  std::atomic<int64_t> input_ns_{0}, infer_ns_{0}, output_ns_{0};
  LatencyHistogram queue_us_, compute_us_, total_us_;
  std::atomic<int64_t> queue_depth_{0};
  std::atomic<int64_t> in_flight_{0};
  std::atomic<int64_t> last_inference_ms_{0};
};

}  // namespace engine
