// The classification extension, as Triton serves it: a requested output with the parameter
// "classification" = k (an integer > 0; tritonclient's InferRequestedOutput(class_count=k)) is
// answered as BYTES strings "value:index" of its k largest elements, largest first. A model
// with a batch dimension (max_batch_size > 0: batching on, or a row limit) is classified row
// by row into shape [rows, k], any other over the whole tensor into [k]. k larger than the
// elements there are is clamped to them. Values print as std::to_string does (six decimals for
// floating point); this engine has no label files, so no ":label" part. NaN ranks lowest; ties
// keep the lower index first.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "codec.h"
#include "model.h"
#include "request.h"
#include "status.h"

namespace engine::server {

inline constexpr std::string_view kClassificationParameter = "classification";

// k for each requested output of `request` (parallel to request.output_names; 0: not asked),
// or empty when no output asks. kInvalidInput, naming the output, for a value that is not a
// positive integer.
Status ClassCounts(const InferRequestView& request, std::vector<int64_t>* counts);

// Whether `model` has a batch dimension in Triton's sense (max_batch_size > 0), as the
// ModelConfig RPC reports it (server/control.py model_config_dict): batching on, or a row
// limit per request with every input and output dynamic along dim 0.
inline bool HasBatchDimension(const Model& model) {
  if (model.batching_enabled()) return true;
  if (model.options().max_request_rows <= 0) return false;
  for (const auto* tensors : {&model.inputs(), &model.outputs()}) {
    for (const TensorInfo& t : *tensors) {
      if (t.shape.empty() || t.shape[0] != -1) return false;
    }
  }
  return true;
}

// Replaces each output of `result` (in the order of `output_names`, as the core returns them)
// that `counts` asks for by its classification. kInvalidInput, naming the output, for a BOOL or
// BYTES output, which has no order to rank by.
Status Classify(const std::vector<int64_t>& counts, bool batched, InferResult* result);

}  // namespace engine::server
