#include "transforms.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string_view>
#include <thread>
#include <unordered_set>

#include "murmur3.h"
#include "status.h"

namespace engine {
namespace {

// One-hot blocks wider than this are refused (the output is dense); the Python spec has the
// same limit.
constexpr int64_t kMaxCardinality = int64_t{1} << 24;
// Below this many rows per thread a thread costs more than it saves (measured: ~30 us to start
// and join one thread against ~15 ns per row and feature).
constexpr int64_t kMinRowsPerThread = 16384;

[[noreturn]] void ConfigError(const FeatureSpec& f, size_t step, const std::string& what) {
  throw CoreError(StatusCode::kInvalidConfig,
                  "transform plan: feature '" + f.name + "' step " + std::to_string(step) + ": " +
                      what);
}

bool IsNumeric(ElementType t) {
  return t == ElementType::kFloat32 || t == ElementType::kFloat64 || t == ElementType::kInt64;
}

bool IsIndexStep(StepKind k) {
  return k == StepKind::kBucketize || k == StepKind::kVocabulary || k == StepKind::kHash;
}

int64_t Cardinality(const StepSpec& s) {
  switch (s.kind) {
    case StepKind::kBucketize: return static_cast<int64_t>(s.boundaries.size()) + 2;
    case StepKind::kVocabulary: return static_cast<int64_t>(s.vocabulary.size()) + s.num_buckets;
    case StepKind::kHash: return s.num_buckets;
    default: return 1;
  }
}

void CheckStep(const FeatureSpec& f, size_t i, bool is_string) {
  const StepSpec& s = f.steps[i];
  const bool string_step = s.kind == StepKind::kImputeString || s.kind == StepKind::kVocabulary ||
                           s.kind == StepKind::kHash;
  if (string_step != is_string) {
    ConfigError(f, i, is_string ? "a numeric step on a string column"
                                : "a string step on a numeric column");
  }
  if (IsIndexStep(s.kind) && i + 1 != f.steps.size()) {
    ConfigError(f, i, "an index-producing step must be the last step");
  }
  switch (s.kind) {
    case StepKind::kAffine:
      if (!std::isfinite(s.offset) || !std::isfinite(s.scale) || s.scale == 0.0) {
        ConfigError(f, i, "affine needs a finite offset and a finite non-zero scale");
      }
      break;
    case StepKind::kClip:
      if (std::isnan(s.min) || std::isnan(s.max) || s.min > s.max) {
        ConfigError(f, i, "clip needs min <= max");
      }
      break;
    case StepKind::kImputeNumeric:
      if (!std::isfinite(s.value)) ConfigError(f, i, "impute needs a finite value");
      break;
    case StepKind::kBucketize:
      if (s.boundaries.empty()) ConfigError(f, i, "bucketize needs boundaries");
      for (size_t b = 0; b < s.boundaries.size(); ++b) {
        if (!std::isfinite(s.boundaries[b]) || (b > 0 && !(s.boundaries[b - 1] < s.boundaries[b]))) {
          ConfigError(f, i, "boundaries must be finite and strictly increasing");
        }
      }
      break;
    case StepKind::kVocabulary: {
      if (s.num_buckets < 0) ConfigError(f, i, "num_oov_buckets must be >= 0");
      std::unordered_set<std::string_view> seen;
      for (const auto& token : s.vocabulary) {
        if (!seen.insert(token).second) ConfigError(f, i, "duplicate vocabulary entry '" + token + "'");
      }
      break;
    }
    case StepKind::kHash:
      if (s.num_buckets < 1) ConfigError(f, i, "hash needs num_buckets >= 1");
      break;
    case StepKind::kLog1p:
    case StepKind::kImputeString:
      break;
    default:
      ConfigError(f, i, "unknown step kind " + std::to_string(static_cast<int>(s.kind)));
  }
  if (IsIndexStep(s.kind) && (Cardinality(s) < 1 || Cardinality(s) > kMaxCardinality)) {
    ConfigError(f, i, "cardinality must be in [1, 2^24]; was " + std::to_string(Cardinality(s)));
  }
}

int64_t FeatureWidth(const FeatureSpec& f) {
  if (f.cross) return f.cross_encoding == Encoding::kOneHot ? f.cross_buckets : 1;
  const StepSpec* last = f.steps.empty() ? nullptr : &f.steps.back();
  if (last && IsIndexStep(last->kind) && last->encoding == Encoding::kOneHot) {
    return Cardinality(*last);
  }
  return 1;
}

TransformPlan::VocabTable BuildVocab(const StepSpec& s) {
  TransformPlan::VocabTable t;
  if (s.vocabulary.empty()) return t;
  size_t size = 2;
  while (size < 2 * s.vocabulary.size()) size *= 2;  // load factor <= 1/2
  t.slots.assign(size, -1);
  t.hashes.resize(s.vocabulary.size());
  for (size_t i = 0; i < s.vocabulary.size(); ++i) {
    const uint32_t h = Murmur3X86_32(s.vocabulary[i].data(), s.vocabulary[i].size(), s.seed);
    t.hashes[i] = h;
    size_t p = h & (size - 1);
    while (t.slots[p] != -1) p = (p + 1) & (size - 1);
    t.slots[p] = static_cast<int32_t>(i);
  }
  return t;
}

// --- apply ------------------------------------------------------------------------------

struct Str {
  const char* p;
  size_t n;
};

Str StringAt(const ColumnView& c, int64_t r) {
  if (c.strings) return {c.strings[r].data(), c.strings[r].size()};
  if (c.views) return {c.views[r].data(), c.views[r].size()};
  return {c.bytes + c.offsets[r], static_cast<size_t>(c.offsets[r + 1] - c.offsets[r])};
}

double NumberAt(const ColumnView& c, int64_t r) {
  switch (c.type) {
    case ElementType::kFloat32: return static_cast<const float*>(c.data)[r];
    case ElementType::kInt64: return static_cast<double>(static_cast<const int64_t*>(c.data)[r]);
    default: return static_cast<const double*>(c.data)[r];
  }
}

// Per-thread scratch for one block of rows.
struct Scratch {
  std::vector<double> x;
  std::vector<int64_t> index;
  std::vector<Str> s;
  std::vector<uint32_t> h;
  explicit Scratch(size_t n) : x(n), index(n), s(n), h(n) {}
};

void NumericStep(const StepSpec& st, double* x, int64_t n) {
  switch (st.kind) {
    case StepKind::kAffine:
      for (int64_t i = 0; i < n; ++i) x[i] = (x[i] - st.offset) / st.scale;
      break;
    case StepKind::kLog1p:
      for (int64_t i = 0; i < n; ++i) x[i] = std::log1p(x[i]);
      break;
    case StepKind::kClip:
      for (int64_t i = 0; i < n; ++i) {
        if (x[i] < st.min) x[i] = st.min;
        if (x[i] > st.max) x[i] = st.max;
      }
      break;
    case StepKind::kImputeNumeric:
      for (int64_t i = 0; i < n; ++i) {
        if (std::isnan(x[i]) || (st.replace_inf && std::isinf(x[i]))) x[i] = st.value;
      }
      break;
    default:
      break;  // validated: no other kind reaches here
  }
}

void Bucketize(const StepSpec& st, const double* x, int64_t* index, int64_t n) {
  const double* b = st.boundaries.data();
  const double* e = b + st.boundaries.size();
  const int64_t nan_bucket = static_cast<int64_t>(st.boundaries.size()) + 1;
  for (int64_t i = 0; i < n; ++i) {
    index[i] = std::isnan(x[i]) ? nan_bucket : std::upper_bound(b, e, x[i]) - b;
  }
}

void Vocabulary(const StepSpec& st, const TransformPlan::VocabTable& t, const Str* s, int64_t* index,
                int64_t n) {
  const size_t mask = t.slots.size() - 1;
  const int64_t size = static_cast<int64_t>(st.vocabulary.size());
  for (int64_t i = 0; i < n; ++i) {
    const uint32_t h = Murmur3X86_32(s[i].p, s[i].n, st.seed);
    int64_t found = -1;
    if (!t.slots.empty()) {
      for (size_t p = h & mask; t.slots[p] != -1; p = (p + 1) & mask) {
        const int32_t v = t.slots[p];
        const std::string& token = st.vocabulary[static_cast<size_t>(v)];
        if (t.hashes[static_cast<size_t>(v)] == h && token.size() == s[i].n &&
            std::memcmp(token.data(), s[i].p, s[i].n) == 0) {
          found = v;
          break;
        }
      }
    }
    if (found < 0 && st.num_buckets > 0) found = size + static_cast<int64_t>(h % st.num_buckets);
    index[i] = found;
  }
}

void WriteIndex(const int64_t* index, int64_t n, Encoding enc, float* out, int64_t width) {
  if (enc == Encoding::kOneHot) {
    for (int64_t i = 0; i < n; ++i) {
      if (index[i] >= 0) out[i * width + index[i]] = 1.0f;
    }
  } else {
    for (int64_t i = 0; i < n; ++i) out[i * width] = static_cast<float>(index[i]);
  }
}

void ApplyFeature(const TransformPlan& plan, size_t fi, const std::vector<ColumnView>& cols,
                  int64_t r0, int64_t n, float* out, Scratch& sc) {
  const FeatureSpec& f = plan.features()[fi];
  const int64_t width = plan.width();
  float* o = out + plan.offset(fi);
  if (f.cross) {
    for (size_t c = 0; c < f.columns.size(); ++c) {
      const ColumnView& col = cols[f.columns[c]];
      for (int64_t i = 0; i < n; ++i) {
        const Str s = StringAt(col, r0 + i);
        const uint32_t h = Murmur3X86_32(s.p, s.n, f.cross_seed);
        sc.h[i] = c == 0 ? h
                         : Murmur3X86_32U64((uint64_t{sc.h[i]} << 32) | h, f.cross_seed);
      }
    }
    for (int64_t i = 0; i < n; ++i) sc.index[i] = sc.h[i] % f.cross_buckets;
    WriteIndex(sc.index.data(), n, f.cross_encoding, o, width);
    return;
  }
  const ColumnView& col = cols[f.columns[0]];
  if (col.type == ElementType::kString) {
    for (int64_t i = 0; i < n; ++i) sc.s[i] = StringAt(col, r0 + i);
    for (const StepSpec& st : f.steps) {
      if (st.kind == StepKind::kImputeString) {
        const Str v{st.string_value.data(), st.string_value.size()};
        for (int64_t i = 0; i < n; ++i) {
          if (sc.s[i].n == 0) sc.s[i] = v;
        }
      } else if (st.kind == StepKind::kVocabulary) {
        Vocabulary(st, plan.vocab(fi), sc.s.data(), sc.index.data(), n);
      } else {  // kHash
        for (int64_t i = 0; i < n; ++i) {
          sc.index[i] = Murmur3X86_32(sc.s[i].p, sc.s[i].n, st.seed) % st.num_buckets;
        }
      }
    }
    WriteIndex(sc.index.data(), n, f.steps.back().encoding, o, width);
    return;
  }
  double* x = sc.x.data();
  for (int64_t i = 0; i < n; ++i) x[i] = NumberAt(col, r0 + i);
  for (const StepSpec& st : f.steps) {
    if (st.kind == StepKind::kBucketize) {
      Bucketize(st, x, sc.index.data(), n);
      WriteIndex(sc.index.data(), n, st.encoding, o, width);
      return;
    }
    NumericStep(st, x, n);
  }
  for (int64_t i = 0; i < n; ++i) o[i * width] = static_cast<float>(x[i]);
}

void ApplyRange(const TransformPlan& plan, const std::vector<ColumnView>& cols, int64_t begin,
                int64_t end, float* out) {
  const int64_t width = plan.width();
  // Blocks of rows whose output fits in L2 keep the strided writes of each feature cached.
  const int64_t block = std::clamp<int64_t>((256 * 1024) / std::max<int64_t>(width * 4, 1), 64, 4096);
  Scratch scratch(static_cast<size_t>(block));
  for (int64_t r0 = begin; r0 < end; r0 += block) {
    const int64_t n = std::min(block, end - r0);
    float* rows_out = out + r0 * width;
    std::memset(rows_out, 0, static_cast<size_t>(n * width) * sizeof(float));  // one-hot zeros
    for (size_t fi = 0; fi < plan.features().size(); ++fi) {
      ApplyFeature(plan, fi, cols, r0, n, rows_out, scratch);
    }
  }
}

[[noreturn]] void InputError(const InputSpec& in, const std::string& what) {
  throw CoreError(StatusCode::kInvalidInput, "transform input column '" + in.name + "' " + what);
}

void CheckColumns(const TransformPlan& plan, const std::vector<ColumnView>& cols, int64_t rows) {
  if (cols.size() != plan.inputs().size()) {
    throw CoreError(StatusCode::kInvalidInput,
                    "transforms need " + std::to_string(plan.inputs().size()) +
                        " input columns; got " + std::to_string(cols.size()));
  }
  for (size_t i = 0; i < cols.size(); ++i) {
    const InputSpec& in = plan.inputs()[i];
    const ColumnView& c = cols[i];
    if (c.rows != rows) {
      InputError(in, "has " + std::to_string(c.rows) + " rows; expected " + std::to_string(rows));
    }
    if (in.type == ElementType::kString) {
      if (c.type != ElementType::kString) {
        InputError(in, std::string("must be string; got ") + ElementTypeName(c.type));
      }
      if (c.strings || c.views || rows == 0) continue;
      if (!c.offsets || (c.bytes_size > 0 && !c.bytes)) InputError(in, "has no string buffers");
      if (c.offsets[0] < 0 || c.offsets[rows] > c.bytes_size) {
        InputError(in, "has string offsets outside its bytes");
      }
      for (int64_t r = 0; r < rows; ++r) {
        if (c.offsets[r + 1] < c.offsets[r]) InputError(in, "has decreasing string offsets");
      }
    } else {
      if (!IsNumeric(c.type)) {
        InputError(in, std::string("must be numeric (float32, float64 or int64); got ") +
                           ElementTypeName(c.type));
      }
      if (rows > 0 && !c.data) InputError(in, "has no data");
    }
  }
}

}  // namespace

TransformPlan::TransformPlan(std::vector<InputSpec> inputs, std::vector<FeatureSpec> features)
    : inputs_(std::move(inputs)), features_(std::move(features)) {
  for (const InputSpec& in : inputs_) {
    if (in.name.empty() || !(IsNumeric(in.type) || in.type == ElementType::kString)) {
      throw CoreError(StatusCode::kInvalidConfig,
                      "transform plan: input '" + in.name + "' needs a name and a type of "
                      "float32, float64, int64 or string; got " + ElementTypeName(in.type));
    }
  }
  if (features_.empty()) {
    throw CoreError(StatusCode::kInvalidConfig, "transform plan: no features");
  }
  for (const FeatureSpec& f : features_) {
    for (size_t c : f.columns) {
      if (c >= inputs_.size()) ConfigError(f, 0, "column index " + std::to_string(c) + " out of range");
    }
    if (f.cross) {
      if (f.columns.size() < 2 || !f.steps.empty()) ConfigError(f, 0, "a cross takes >= 2 columns and no steps");
      for (size_t c : f.columns) {
        if (inputs_[c].type != ElementType::kString) ConfigError(f, 0, "cross columns must be strings");
      }
      if (f.cross_buckets < 1 || f.cross_buckets > kMaxCardinality) {
        ConfigError(f, 0, "cross buckets must be in [1, 2^24]");
      }
    } else {
      if (f.columns.size() != 1) ConfigError(f, 0, "a chain reads exactly one column");
      const bool is_string = inputs_[f.columns[0]].type == ElementType::kString;
      for (size_t i = 0; i < f.steps.size(); ++i) CheckStep(f, i, is_string);
      if (is_string && (f.steps.empty() || !IsIndexStep(f.steps.back().kind))) {
        ConfigError(f, f.steps.size(), "a string chain must end in vocabulary or hash");
      }
    }
    offsets_.push_back(width_);
    width_ += FeatureWidth(f);
    const bool vocab = !f.cross && !f.steps.empty() && f.steps.back().kind == StepKind::kVocabulary;
    vocabs_.push_back(vocab ? BuildVocab(f.steps.back()) : VocabTable{});
  }
}

void ApplyTransformsTo(const TransformPlan& plan, const std::vector<ColumnView>& columns,
                       int64_t rows, float* out, int max_threads) {
  CheckColumns(plan, columns, rows);
  if (rows == 0) return;
  int64_t threads = max_threads > 0 ? max_threads : std::max(1u, std::thread::hardware_concurrency());
  threads = std::max<int64_t>(1, std::min(threads, rows / kMinRowsPerThread));
  if (threads == 1) {
    ApplyRange(plan, columns, 0, rows, out);
    return;
  }
  std::vector<std::thread> workers;
  const int64_t per = (rows + threads - 1) / threads;
  for (int64_t t = 1; t < threads; ++t) {
    const int64_t b = t * per;
    const int64_t e = std::min(rows, b + per);
    workers.emplace_back([&plan, &columns, b, e, out] { ApplyRange(plan, columns, b, e, out); });
  }
  ApplyRange(plan, columns, 0, std::min(rows, per), out);
  for (auto& w : workers) w.join();
}

HostTensor ApplyTransforms(const TransformPlan& plan, const std::vector<const HostTensor*>& columns,
                           int max_threads) {
  if (columns.size() != plan.inputs().size()) {
    throw CoreError(StatusCode::kInvalidInput,
                    "transforms need " + std::to_string(plan.inputs().size()) +
                        " input columns; got " + std::to_string(columns.size()));
  }
  std::vector<ColumnView> views(columns.size());
  int64_t rows = columns.empty() || !columns[0] ? 0 : columns[0]->rows();
  for (size_t i = 0; i < columns.size(); ++i) {
    const HostTensor* t = columns[i];
    const InputSpec& in = plan.inputs()[i];
    if (!t) InputError(in, "is missing");
    const bool shape_ok = t->shape.size() == 1 || (t->shape.size() == 2 && t->shape[1] == 1);
    if (!shape_ok) InputError(in, "must be [rows] or [rows, 1]; got " + ShapeToString(t->shape));
    ColumnView& v = views[i];
    v.type = t->type;
    v.rows = t->shape[0];
    if (t->type == ElementType::kString) {
      if (static_cast<int64_t>(t->strings.size()) != v.rows) InputError(in, "has a bad string count");
      v.strings = t->strings.data();
    } else {
      if (IsNumeric(t->type) &&
          t->byte_size != static_cast<size_t>(v.rows) * ElementSize(t->type)) {
        InputError(in, "has a byte size that does not match its shape");
      }
      v.data = t->data;
    }
  }
  CheckColumns(plan, views, rows);
  HostTensor out = AllocateHostTensor(ElementType::kFloat32, {rows, plan.width()});
  ApplyTransformsTo(plan, views, rows, static_cast<float*>(MutableData(out)), max_threads);
  return out;
}

}  // namespace engine
