#include "classification.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <string>
#include <type_traits>
#include <utility>

#include "names.h"

namespace engine::server {
namespace {

Status Invalid(std::string message) {
  return Status(StatusCode::kInvalidInput, std::move(message));
}

// The k largest of `values` as "value:index", largest first; NaN below every number.
template <typename T>
void TopK(const T* values, int64_t count, int64_t k, std::vector<std::string>* out) {
  std::vector<int64_t> order(static_cast<size_t>(count));
  std::iota(order.begin(), order.end(), int64_t{0});
  auto larger = [values](int64_t a, int64_t b) {
    if constexpr (std::is_floating_point_v<T>) {
      if (std::isnan(values[a])) return false;
      if (std::isnan(values[b])) return true;
    }
    return values[a] > values[b];
  };
  std::partial_sort(order.begin(), order.begin() + k, order.end(),
                    [&](int64_t a, int64_t b) { return larger(a, b) || (!larger(b, a) && a < b); });
  for (int64_t i = 0; i < k; ++i) {
    const int64_t index = order[static_cast<size_t>(i)];
    out->push_back(std::to_string(values[index]) + ":" + std::to_string(index));
  }
}

// Halves widened to float first: std::to_string and the comparisons need a real type.
std::vector<float> HalvesAsFloats(const HostTensor& t) {
  std::vector<float> out(static_cast<size_t>(t.element_count()));
  const auto* bits = static_cast<const uint16_t*>(t.data);
  for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<float>(HalfToDouble(bits[i]));
  return out;
}

template <typename T>
void ClassifyRows(const T* values, int64_t rows, int64_t per_row, int64_t k,
                  std::vector<std::string>* out) {
  for (int64_t r = 0; r < rows; ++r) TopK(values + r * per_row, per_row, k, out);
}

}  // namespace

Status ClassCounts(const InferRequestView& request, std::vector<int64_t>* counts) {
  counts->clear();
  for (size_t i = 0; i < request.output_parameters.size(); ++i) {
    for (const InferParameterView& param : request.output_parameters[i]) {
      if (param.key != kClassificationParameter) continue;
      int64_t k = 0;
      if (param.choice == inference::InferParameter::kInt64Param) {
        k = param.int64_value;
      } else if (param.choice == inference::InferParameter::kUint64Param) {
        k = param.uint64_value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())
                ? -1
                : static_cast<int64_t>(param.uint64_value);
      } else {
        k = -1;
      }
      if (k <= 0) {
        return Invalid(Named("requested output", request.output_names[i]) +
                       ": parameter 'classification' must be a positive integer (the number of "
                       "classes to return)");
      }
      if (counts->empty()) counts->assign(request.output_names.size(), 0);
      (*counts)[i] = k;
    }
  }
  return Status::Ok();
}

Status Classify(const std::vector<int64_t>& counts, bool batched, InferResult* result) {
  for (size_t i = 0; i < counts.size() && i < result->outputs.size(); ++i) {
    if (counts[i] == 0) continue;
    auto& [name, tensor] = result->outputs[i];
    if (tensor.type == ElementType::kString || tensor.type == ElementType::kBool) {
      return Invalid(Named("requested output", name) + ": classification needs a numeric "
                     "output; this one is " + (tensor.type == ElementType::kBool ? "BOOL" : "BYTES"));
    }
    const bool by_row = batched && !tensor.shape.empty();
    const int64_t rows = by_row ? tensor.shape[0] : 1;
    int64_t per_row = 1;  // from the shape, so that a zero-row batch still has its width
    for (size_t d = by_row ? 1 : 0; d < tensor.shape.size(); ++d) per_row *= tensor.shape[d];
    const int64_t k = std::min(counts[i], per_row);
    std::vector<std::string> classes;
    classes.reserve(static_cast<size_t>(rows * k));
    switch (tensor.type) {
#define ENGINE_CLASSIFY(TYPE, CPP)                                                            \
  case ElementType::TYPE:                                                                     \
    ClassifyRows(static_cast<const CPP*>(tensor.data), rows, per_row, k, &classes);           \
    break;
      ENGINE_CLASSIFY(kFloat32, float)
      ENGINE_CLASSIFY(kFloat64, double)
      ENGINE_CLASSIFY(kUInt8, uint8_t)
      ENGINE_CLASSIFY(kInt8, int8_t)
      ENGINE_CLASSIFY(kUInt16, uint16_t)
      ENGINE_CLASSIFY(kInt16, int16_t)
      ENGINE_CLASSIFY(kInt32, int32_t)
      ENGINE_CLASSIFY(kInt64, int64_t)
      ENGINE_CLASSIFY(kUInt32, uint32_t)
      ENGINE_CLASSIFY(kUInt64, uint64_t)
#undef ENGINE_CLASSIFY
      case ElementType::kFloat16: {
        const std::vector<float> widened = HalvesAsFloats(tensor);
        ClassifyRows(widened.data(), rows, per_row, k, &classes);
        break;
      }
      default:
        return Invalid(Named("requested output", name) + ": classification needs a numeric "
                       "output");
    }
    HostTensor strings;
    strings.type = ElementType::kString;
    strings.shape = by_row ? std::vector<int64_t>{rows, k} : std::vector<int64_t>{k};
    strings.strings = std::move(classes);
    tensor = std::move(strings);
  }
  return Status::Ok();
}

}  // namespace engine::server
