#include "statistics.h"

namespace engine::server {
namespace {

constexpr uint64_t kNsPerUs = 1000;

void SetDuration(inference::StatisticDuration* d, int64_t count, int64_t total_us) {
  d->set_count(static_cast<uint64_t>(count));
  d->set_ns(static_cast<uint64_t>(total_us) * kNsPerUs);
}

}  // namespace

void FillModelStatistics(const std::string& name, int64_t version, const StatsSnapshot& stats,
                         inference::ModelStatistics* out) {
  out->set_name(name);
  out->set_version(std::to_string(version));
  out->set_last_inference(static_cast<uint64_t>(stats.last_inference_ms));
  out->set_inference_count(static_cast<uint64_t>(stats.inferred_rows));
  out->set_execution_count(static_cast<uint64_t>(stats.batches));

  const int64_t ok = stats.requests[static_cast<size_t>(Outcome::kOk)];
  int64_t failed = 0;
  for (size_t i = 0; i < stats.requests.size(); ++i) {
    if (i != static_cast<size_t>(Outcome::kOk)) failed += stats.requests[i];
  }
  auto* infer = out->mutable_inference_stats();
  SetDuration(infer->mutable_success(), ok, stats.total_us.sum);
  SetDuration(infer->mutable_fail(), failed, 0);
  SetDuration(infer->mutable_queue(), stats.queue_us.count, stats.queue_us.sum);
  // The core times gather + run + scatter as one span: reported as compute_infer.
  SetDuration(infer->mutable_compute_input(), stats.compute_us.count, 0);
  SetDuration(infer->mutable_compute_infer(), stats.compute_us.count, stats.compute_us.sum);
  SetDuration(infer->mutable_compute_output(), stats.compute_us.count, 0);

  for (size_t rows = 1; rows < stats.batch_rows.size(); ++rows) {
    const int64_t count = stats.batch_rows[rows];
    if (count == 0) continue;
    auto* b = out->add_batch_stats();
    b->set_batch_size(rows);
    const int64_t compute_us =
        rows < stats.batch_compute_us.size() ? stats.batch_compute_us[rows] : 0;
    SetDuration(b->mutable_compute_input(), count, 0);
    SetDuration(b->mutable_compute_infer(), count, compute_us);
    SetDuration(b->mutable_compute_output(), count, 0);
  }
}

}  // namespace engine::server
