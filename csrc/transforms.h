// Feature transforms in the core: a compiled TransformPlan applied to a batch of raw columns.
//
// The spec (its JSON, validation and fitting) lives in Python, engine/transforms/spec.py, which
// also documents the exact semantics. Python lowers a spec to the plain structs below
// (InputSpec, StepSpec, FeatureSpec); TransformPlan checks and compiles them once (vocabulary
// hash tables, output offsets). Applying a plan never allocates per row and never calls Python.
//
// Numbers: float32 / float64 / int64 inputs are widened to double; every step computes in
// double; the output is rounded to float32 once. Strings: UTF-8 bytes; "" is the missing value.
// Output: float32 [rows, width], row-major, features in plan order.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "element_type.h"
#include "tensor.h"

namespace engine {

enum class StepKind : int {
  kAffine = 0,         // (x - offset) / scale: standardize, min-max and robust scaling
  kLog1p = 1,          // log1p(x)
  kClip = 2,           // x < min -> min, x > max -> max; NaN stays NaN
  kImputeNumeric = 3,  // NaN (and +-inf if replace_inf) -> value
  kImputeString = 4,   // "" -> string_value
  kBucketize = 5,      // count of boundaries <= x; NaN -> boundaries.size() + 1
  kVocabulary = 6,     // index in vocabulary; unseen -> V + murmur3 % num_buckets, or -1 if 0
  kHash = 7,           // murmur3(bytes, seed) % num_buckets
};

enum class Encoding : int {
  kIndex = 0,   // one output column holding the index as float
  kOneHot = 1,  // `cardinality` columns, 1.0 at the index (all zero for index -1)
};

// One raw input column: its name (for errors) and declared type (kFloat32, kFloat64, kInt64
// or kString). Numeric inputs accept any of the three numeric types at apply time.
struct InputSpec {
  std::string name;
  ElementType type = ElementType::kUndefined;
};

// One step; only the fields of its kind are read.
struct StepSpec {
  StepKind kind = StepKind::kAffine;
  double offset = 0.0;  // kAffine
  double scale = 1.0;   // kAffine, != 0
  double min = -std::numeric_limits<double>::infinity();  // kClip
  double max = std::numeric_limits<double>::infinity();   // kClip
  double value = 0.0;                                     // kImputeNumeric
  bool replace_inf = false;                               // kImputeNumeric
  std::string string_value;                               // kImputeString
  std::vector<double> boundaries;                         // kBucketize, strictly increasing
  std::vector<std::string> vocabulary;                    // kVocabulary, unique
  int64_t num_buckets = 0;  // kHash: buckets (>= 1); kVocabulary: OOV buckets (>= 0)
  uint32_t seed = 0;        // kHash, kVocabulary (OOV)
  Encoding encoding = Encoding::kIndex;  // index-producing steps (the last of a chain)
};

// A feature: a chain of steps over one column, or (cross) a hashed combination of two or more
// string columns. `columns` are indices into the plan's inputs.
struct FeatureSpec {
  std::string name;
  std::vector<size_t> columns;
  std::vector<StepSpec> steps;     // empty for a cross
  bool cross = false;
  int64_t cross_buckets = 0;       // cross only, >= 1
  uint32_t cross_seed = 0;         // cross only
  Encoding cross_encoding = Encoding::kIndex;
};

// A borrowed view of one input column of `rows` values. Numeric: `data` points at rows values
// of `type`. Strings: `strings` (rows std::strings, as in HostTensor), `views` (rows views,
// e.g. into Python str objects), or Arrow-style `offsets` (rows + 1 int64, non-decreasing,
// within [0, bytes_size]) into `bytes`. The caller keeps the memory alive for the duration of
// the apply call.
struct ColumnView {
  ElementType type = ElementType::kUndefined;
  int64_t rows = 0;
  const void* data = nullptr;
  const std::string* strings = nullptr;
  const std::string_view* views = nullptr;
  const int64_t* offsets = nullptr;
  const char* bytes = nullptr;
  int64_t bytes_size = 0;
};

// An immutable, validated plan. Thread-safe to apply from many threads at once.
// Invariants: every feature's chain is type-correct for its column (numeric steps on numeric
// columns; a string chain ends in kVocabulary or kHash; index steps come last); widths and
// offsets add up to width().
class TransformPlan {
 public:
  // Validates and compiles. Throws CoreError(kInvalidConfig) naming the feature and step.
  TransformPlan(std::vector<InputSpec> inputs, std::vector<FeatureSpec> features);

  const std::vector<InputSpec>& inputs() const { return inputs_; }
  const std::vector<FeatureSpec>& features() const { return features_; }
  // Output columns.
  int64_t width() const { return width_; }
  // First output column of feature i.
  int64_t offset(size_t i) const { return offsets_[i]; }

  // Open-addressing vocabulary table of a kVocabulary step (internal; used by the apply).
  struct VocabTable {
    std::vector<int32_t> slots;  // vocabulary index or -1; size is a power of two
    std::vector<uint32_t> hashes;  // murmur3(vocabulary[i], seed)
  };
  const VocabTable& vocab(size_t feature) const { return vocabs_[feature]; }

 private:
  std::vector<InputSpec> inputs_;
  std::vector<FeatureSpec> features_;
  std::vector<int64_t> offsets_;
  std::vector<VocabTable> vocabs_;  // per feature; empty unless it ends in kVocabulary
  int64_t width_ = 0;
};

// Applies `plan` to `columns` (one per plan input, in order), writing `rows` x width() floats
// to `out` (row-major; the caller owns it). Splits rows over up to `max_threads` threads
// (0: hardware concurrency) when the batch is large enough to pay for them; blocks until
// done. Throws CoreError(kInvalidInput) naming the column for a wrong type, a row count that is
// not `rows`, or malformed string offsets; nothing is written then.
void ApplyTransformsTo(const TransformPlan& plan, const std::vector<ColumnView>& columns,
                       int64_t rows, float* out, int max_threads = 0);

// The batcher's entry point: columns as HostTensors ([rows] or [rows, 1]; numeric or kString),
// in plan input order. Returns a fresh float32 [rows, width()] tensor that owns its memory.
// Same errors as ApplyTransformsTo, plus kInvalidInput for a column count mismatch or a bad
// shape.
HostTensor ApplyTransforms(const TransformPlan& plan, const std::vector<const HostTensor*>& columns,
                           int max_threads = 0);

}  // namespace engine
