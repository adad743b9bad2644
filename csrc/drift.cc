#include "drift.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>

#include "status.h"

namespace engine {
namespace {

[[noreturn]] void Bad(const std::string& feature, const std::string& message) {
  throw CoreError(StatusCode::kInvalidConfig, "drift feature '" + feature + "': " + message);
}

template <typename T>
double ValueAt(const HostTensor& t, int64_t i) {
  T v;
  std::memcpy(&v, static_cast<const uint8_t*>(t.data) + static_cast<size_t>(i) * sizeof(T),
              sizeof(T));
  return static_cast<double>(v);
}

// Element i of a numeric tensor as double.
double NumericAt(const HostTensor& t, int64_t i) {
  switch (t.type) {
    case ElementType::kFloat32: return ValueAt<float>(t, i);
    case ElementType::kFloat64: return ValueAt<double>(t, i);
    case ElementType::kFloat16: {
      uint16_t h;
      std::memcpy(&h, static_cast<const uint8_t*>(t.data) + static_cast<size_t>(i) * 2, 2);
      return HalfToDouble(h);
    }
    case ElementType::kInt8: return ValueAt<int8_t>(t, i);
    case ElementType::kInt16: return ValueAt<int16_t>(t, i);
    case ElementType::kInt32: return ValueAt<int32_t>(t, i);
    case ElementType::kInt64: return ValueAt<int64_t>(t, i);
    case ElementType::kUInt8: return ValueAt<uint8_t>(t, i);
    case ElementType::kUInt16: return ValueAt<uint16_t>(t, i);
    case ElementType::kUInt32: return ValueAt<uint32_t>(t, i);
    case ElementType::kUInt64: return ValueAt<uint64_t>(t, i);
    case ElementType::kBool: return ValueAt<uint8_t>(t, i) ? 1.0 : 0.0;
    case ElementType::kString:
    case ElementType::kUndefined: break;
  }
  return NAN;
}

// How a numeric value names a category: integers as "%lld" (so 3.0 -> "3").
std::string CategoryOfNumber(double v) {
  if (std::isnan(v)) return "";
  if (std::floor(v) == v && std::fabs(v) < 9.2e18) {
    return std::to_string(static_cast<long long>(v));
  }
  // Shortest text that round-trips, as Python's str() writes it (0.1 -> "0.1").
  char buffer[32];
  const auto result = std::to_chars(buffer, buffer + sizeof(buffer), v);
  return std::string(buffer, result.ptr);
}

inline void CountValue(double v, const std::vector<double>& edges, int64_t* slots) {
  const size_t k_edges = edges.size();
  if (std::isnan(v)) {
    ++slots[k_edges + 1];
  } else if (std::isinf(v)) {
    ++slots[k_edges + 2];
  } else {
    ++slots[std::upper_bound(edges.begin(), edges.end(), v) - edges.begin()];
  }
}

template <typename T>
void CountNumeric(const T* data, int64_t start, int64_t step, int64_t n,
                  const std::vector<double>& edges, int64_t* slots) {
  for (int64_t k = 0; k < n; ++k) {
    CountValue(static_cast<double>(data[start + k * step]), edges, slots);
  }
}

}  // namespace

DriftCounters::DriftCounters(std::vector<DriftFeature> features,
                             const std::vector<TensorInfo>& inputs,
                             const std::vector<TensorInfo>& outputs, int shards)
    : features_(std::move(features)), shards_(std::max(shards, 1)) {
  for (const auto& f : features_) {
    Resolved r;
    const TensorInfo* info = nullptr;
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (inputs[i].name == f.tensor) {
        info = &inputs[i];
        r.index = i;
      }
    }
    for (size_t i = 0; info == nullptr && i < outputs.size(); ++i) {
      if (outputs[i].name == f.tensor) {
        info = &outputs[i];
        r.index = i;
        r.is_output = true;
      }
    }
    if (info == nullptr) Bad(f.name, "no input or output named '" + f.tensor + "'");
    if (f.column >= 0) {
      if (info->shape.size() != 2) Bad(f.name, "a column needs a 2-D tensor");
      if (info->shape[1] >= 0 && f.column >= info->shape[1]) {
        Bad(f.name, "column " + std::to_string(f.column) + " is outside '" + f.tensor + "'");
      }
    }
    if (f.categorical) {
      if (f.categories.empty()) Bad(f.name, "a categorical feature needs categories");
      for (size_t c = 0; c < f.categories.size(); ++c) r.category_index[f.categories[c]] = c;
      r.slots = f.categories.size() + 2;
    } else {
      if (info->type == ElementType::kString) Bad(f.name, "a string tensor must be categorical");
      for (size_t e = 1; e < f.edges.size(); ++e) {
        if (!(f.edges[e - 1] < f.edges[e])) Bad(f.name, "edges must be strictly ascending");
      }
      r.slots = f.edges.size() + 3;
    }
    r.offset = slots_per_shard_;
    slots_per_shard_ += r.slots;
    resolved_.push_back(std::move(r));
  }
  counts_.reset(new std::atomic<int64_t>[slots_per_shard_ * static_cast<size_t>(shards_)]());
}

void DriftCounters::CountFeature(size_t f, const HostTensor& t,
                                 std::vector<int64_t>* local) const {
  const DriftFeature& feature = features_[f];
  const Resolved& r = resolved_[f];
  int64_t* slots = local->data() + r.offset;
  const int64_t count = t.element_count();
  int64_t start = 0, step = 1, n = count;
  if (feature.column >= 0) {
    if (t.shape.size() != 2 || feature.column >= t.shape[1]) return;
    start = feature.column;
    step = t.shape[1];
    n = t.shape[0];
  }
  if (feature.categorical) {
    const size_t m = feature.categories.size();
    std::string number_key;  // numbers name their category as text; strings are used as is
    for (int64_t k = 0; k < n; ++k) {
      const int64_t i = start + k * step;
      if (t.type != ElementType::kString) number_key = CategoryOfNumber(NumericAt(t, i));
      const std::string& key =
          t.type == ElementType::kString ? t.strings[static_cast<size_t>(i)] : number_key;
      if (key.empty()) {
        ++slots[m + 1];
        continue;
      }
      auto it = r.category_index.find(key);
      ++slots[it == r.category_index.end() ? m : it->second];
    }
    return;
  }
  // Numeric: dispatch on the element type once, not per value (this runs on every batch).
  switch (t.type) {
    case ElementType::kFloat32:
      CountNumeric(static_cast<const float*>(t.data), start, step, n, feature.edges, slots);
      break;
    case ElementType::kFloat64:
      CountNumeric(static_cast<const double*>(t.data), start, step, n, feature.edges, slots);
      break;
    case ElementType::kInt64:
      CountNumeric(static_cast<const int64_t*>(t.data), start, step, n, feature.edges, slots);
      break;
    default:
      for (int64_t k = 0; k < n; ++k) {
        CountValue(NumericAt(t, start + k * step), feature.edges, slots);
      }
  }
}

void DriftCounters::Observe(int shard, const std::vector<const HostTensor*>& inputs,
                            const std::vector<HostTensor>& outputs,
                            const std::vector<size_t>& output_indices) {
  std::vector<int64_t> local(slots_per_shard_, 0);
  for (size_t f = 0; f < features_.size(); ++f) {
    const Resolved& r = resolved_[f];
    const HostTensor* tensor = nullptr;
    if (!r.is_output) {
      if (r.index < inputs.size()) tensor = inputs[r.index];
    } else {
      for (size_t o = 0; o < output_indices.size(); ++o) {
        if (output_indices[o] == r.index) tensor = &outputs[o];
      }
    }
    if (tensor != nullptr) CountFeature(f, *tensor, &local);
  }
  std::atomic<int64_t>* base = counts_.get() + static_cast<size_t>(shard % shards_) * slots_per_shard_;
  for (size_t s = 0; s < slots_per_shard_; ++s) {
    if (local[s] != 0) base[s].fetch_add(local[s], std::memory_order_relaxed);
  }
}

std::vector<std::vector<int64_t>> DriftCounters::Snapshot() const {
  std::vector<std::vector<int64_t>> result;
  for (size_t f = 0; f < features_.size(); ++f) {
    const Resolved& r = resolved_[f];
    std::vector<int64_t> counts(r.slots, 0);
    for (int s = 0; s < shards_; ++s) {
      const std::atomic<int64_t>* base = counts_.get() + static_cast<size_t>(s) * slots_per_shard_;
      for (size_t k = 0; k < r.slots; ++k) {
        counts[k] += base[r.offset + k].load(std::memory_order_relaxed);
      }
    }
    result.push_back(std::move(counts));
  }
  return result;
}

}  // namespace engine
