// Live feature histograms for drift monitoring, over the bins of a reference profile.
//
// Configured once per profile (Python's monitor sets it), then updated on every batch by the
// worker that ran it. Each instance has its own shard of counters, so the hot path takes no
// lock: a batch is first counted into a local vector, then added to its shard with one relaxed
// atomic add per bin. Snapshot() sums the shards.
//
// Slot layout per feature (the monitor's numpy reference must match it exactly):
//   numeric, inner edges e_0 < ... < e_{k-1}: k+1 value bins (bin 0: v < e_0; bin i:
//     e_{i-1} <= v < e_i; bin k: v >= e_{k-1}), then NaN, then +-inf: k+3 slots;
//   categorical with m categories: one slot each in order, then "other" (unseen), then
//     "missing" (empty string, or NaN): m+2 slots.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "session.h"
#include "tensor.h"

namespace engine {

struct DriftFeature {
  std::string name;
  std::string tensor;     // input or output name
  int64_t column = -1;    // column along dim 1 of a 2-D tensor; -1: every element
  bool categorical = false;
  std::vector<double> edges;            // numeric: ascending inner boundaries
  std::vector<std::string> categories;  // categorical
};

class DriftCounters {
 public:
  // Resolves tensor names against the model's signature. Throws CoreError(kInvalidConfig)
  // naming the feature for an unknown tensor, a bad column, unsorted edges, or a categorical
  // feature on a float tensor whose values cannot name a category.
  DriftCounters(std::vector<DriftFeature> features, const std::vector<TensorInfo>& inputs,
                const std::vector<TensorInfo>& outputs, int shards);

  // Counts one batch. `inputs` are in signature order; `outputs[i]` is the model output at
  // position output_indices[i]. Only the thread owning `shard` may call it for that shard.
  void Observe(int shard, const std::vector<const HostTensor*>& inputs,
               const std::vector<HostTensor>& outputs, const std::vector<size_t>& output_indices);

  const std::vector<DriftFeature>& features() const { return features_; }
  // Cumulative counts per feature, summed over shards.
  std::vector<std::vector<int64_t>> Snapshot() const;

 private:
  struct Resolved {
    bool is_output = false;
    size_t index = 0;  // position in inputs or outputs of the model
    size_t slots = 0;
    size_t offset = 0;  // first slot in a shard's flat counter array
    std::unordered_map<std::string, size_t> category_index;
  };
  void CountFeature(size_t f, const HostTensor& tensor, std::vector<int64_t>* local) const;

  std::vector<DriftFeature> features_;
  std::vector<Resolved> resolved_;
  size_t slots_per_shard_ = 0;
  int shards_;
  std::unique_ptr<std::atomic<int64_t>[]> counts_;  // shards_ x slots_per_shard_
};

}  // namespace engine
