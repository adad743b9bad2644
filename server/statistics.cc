#include "statistics.h"

namespace engine::server {
namespace {

constexpr int64_t kNsPerUs = 1000;

void SetDurationNs(inference::StatisticDuration* d, int64_t count, int64_t total_ns) {
  d->set_count(static_cast<uint64_t>(count));
  d->set_ns(static_cast<uint64_t>(total_ns));
}

void SetDuration(inference::StatisticDuration* d, int64_t count, int64_t total_us) {
  SetDurationNs(d, count, total_us * kNsPerUs);
}


}  // namespace

void FillModelStatistics(const std::string& name, int64_t version, const StatsSnapshot& stats,
                         inference::ModelStatistics* out) {
  out->set_name(name);
  out->set_version(std::to_string(version));
  out->set_last_inference(static_cast<uint64_t>(stats.last_inference_ms));
  out->set_inference_count(static_cast<uint64_t>(stats.inferred_rows));
  // Triton's execution_count counts successful executions, as its batch_stats do: summed
  // from the per-size counts, which only successful runs reach (batches - failed_batches,
  // two counters read one after the other, could dip below a poll before, even below 0).
  int64_t executions = 0;
  for (const BatchSizeStats& size : stats.batch_sizes) {
    if (size.rows > 0) executions += size.batches;  // as batch_stats below reports them
  }
  out->set_execution_count(static_cast<uint64_t>(executions));

  const int64_t ok = stats.requests[static_cast<size_t>(Outcome::kOk)];
  int64_t failed = 0;
  for (size_t i = 0; i < stats.requests.size(); ++i) {
    if (i != static_cast<size_t>(Outcome::kOk)) failed += stats.requests[i];
  }
  auto* infer = out->mutable_inference_stats();
  SetDuration(infer->mutable_success(), ok, stats.total_us.sum);
  SetDuration(infer->mutable_fail(), failed, 0);
  SetDuration(infer->mutable_queue(), stats.queue_us.count, stats.queue_us.sum);
  // Triton's split of a request's batch: gather (and transforms), the ORT run, scatter.
  SetDurationNs(infer->mutable_compute_input(), ok, stats.input_ns);
  SetDurationNs(infer->mutable_compute_infer(), ok, stats.infer_ns);
  SetDurationNs(infer->mutable_compute_output(), ok, stats.output_ns);

  for (const BatchSizeStats& size : stats.batch_sizes) {
    if (size.rows == 0) continue;  // Triton reports batches of at least one row
    auto* b = out->add_batch_stats();
    b->set_batch_size(static_cast<uint64_t>(size.rows));
    SetDurationNs(b->mutable_compute_input(), size.batches, size.input_ns);
    SetDurationNs(b->mutable_compute_infer(), size.batches, size.infer_ns);
    SetDurationNs(b->mutable_compute_output(), size.batches, size.output_ns);
  }
}

}  // namespace engine::server
