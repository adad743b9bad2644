#include "codec.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <limits>

#include "classification.h"
#include "names.h"

namespace engine::server {
namespace {

static_assert(sizeof(float) == 4 && sizeof(double) == 8, "IEEE-754 floats expected");

struct TypeName {
  ElementType type;
  const char* kserve;
};

constexpr std::array<TypeName, 13> kTypeNames = {{
    {ElementType::kBool, "BOOL"},
    {ElementType::kUInt8, "UINT8"},
    {ElementType::kUInt16, "UINT16"},
    {ElementType::kUInt32, "UINT32"},
    {ElementType::kUInt64, "UINT64"},
    {ElementType::kInt8, "INT8"},
    {ElementType::kInt16, "INT16"},
    {ElementType::kInt32, "INT32"},
    {ElementType::kInt64, "INT64"},
    {ElementType::kFloat16, "FP16"},
    {ElementType::kFloat32, "FP32"},
    {ElementType::kFloat64, "FP64"},
    {ElementType::kString, "BYTES"},
}};

// Triton's convention: 1 is the most urgent level, larger is less urgent, 0 is "no priority".
// The core runs higher values first, so level p becomes kPriorityLevels - p, and requests
// without a priority (0) run after every request that has one.
constexpr int64_t kPriorityLevels = 1 << 20;

Status Invalid(std::string message) { return Status(StatusCode::kInvalidInput, std::move(message)); }

// Copies a typed repeated field into a fresh tensor of `type`, converting each element.
template <typename Dest, typename Field>
HostTensor CopyTyped(ElementType type, const std::vector<int64_t>& shape, const Field& field) {
  HostTensor t = AllocateHostTensor(type, shape);
  auto* dest = static_cast<Dest*>(MutableData(t));
  int64_t i = 0;
  for (const auto& v : field) dest[i++] = static_cast<Dest>(v);
  return t;
}

// Count of values in the one typed field that `type` uses; -1 when a different field is set.
int64_t TypedCount(ElementType type, const inference::InferTensorContents& c) {
  const std::array<int, 8> sizes = {c.bool_contents_size(),   c.int_contents_size(),
                                    c.int64_contents_size(),  c.uint_contents_size(),
                                    c.uint64_contents_size(), c.fp32_contents_size(),
                                    c.fp64_contents_size(),   c.bytes_contents_size()};
  int field = -1;
  switch (type) {
    case ElementType::kBool: field = 0; break;
    case ElementType::kInt8: case ElementType::kInt16: case ElementType::kInt32: field = 1; break;
    case ElementType::kInt64: field = 2; break;
    case ElementType::kUInt8: case ElementType::kUInt16: case ElementType::kUInt32: field = 3; break;
    case ElementType::kUInt64: field = 4; break;
    case ElementType::kFloat32: field = 5; break;
    case ElementType::kFloat64: field = 6; break;
    case ElementType::kString: field = 7; break;
    default: field = -1; break;
  }
  for (int i = 0; i < 8; ++i) {
    if (i != field && sizes[static_cast<size_t>(i)] != 0) return -1;
  }
  return field < 0 ? 0 : sizes[static_cast<size_t>(field)];
}

HostTensor FromTyped(ElementType type, const std::vector<int64_t>& shape,
                     const inference::InferTensorContents& c) {
  switch (type) {
    case ElementType::kBool: return CopyTyped<uint8_t>(type, shape, c.bool_contents());
    case ElementType::kInt8: return CopyTyped<int8_t>(type, shape, c.int_contents());
    case ElementType::kInt16: return CopyTyped<int16_t>(type, shape, c.int_contents());
    case ElementType::kInt32: return CopyTyped<int32_t>(type, shape, c.int_contents());
    case ElementType::kInt64: return CopyTyped<int64_t>(type, shape, c.int64_contents());
    case ElementType::kUInt8: return CopyTyped<uint8_t>(type, shape, c.uint_contents());
    case ElementType::kUInt16: return CopyTyped<uint16_t>(type, shape, c.uint_contents());
    case ElementType::kUInt32: return CopyTyped<uint32_t>(type, shape, c.uint_contents());
    case ElementType::kUInt64: return CopyTyped<uint64_t>(type, shape, c.uint64_contents());
    case ElementType::kFloat32: return CopyTyped<float>(type, shape, c.fp32_contents());
    case ElementType::kFloat64: return CopyTyped<double>(type, shape, c.fp64_contents());
    case ElementType::kString: {
      HostTensor t;
      t.type = type;
      t.shape = shape;
      t.strings.assign(c.bytes_contents().begin(), c.bytes_contents().end());
      return t;
    }
    default: return HostTensor{};
  }
}

// Range checks for narrowing typed contents: a value that does not fit is refused, not wrapped.
bool TypedValuesFit(ElementType type, const inference::InferTensorContents& c) {
  auto all_in = [](const auto& field, int64_t lo, int64_t hi) {
    for (const auto& v : field) {
      if (static_cast<int64_t>(v) < lo || static_cast<int64_t>(v) > hi) return false;
    }
    return true;
  };
  switch (type) {
    case ElementType::kInt8: return all_in(c.int_contents(), -128, 127);
    case ElementType::kInt16: return all_in(c.int_contents(), -32768, 32767);
    case ElementType::kUInt8: return all_in(c.uint_contents(), 0, 255);
    case ElementType::kUInt16: return all_in(c.uint_contents(), 0, 65535);
    default: return true;
  }
}

Status DecodeParameters(const InferRequestView& request, DecodedRequest* out) {
  for (const InferParameterView& param : request.parameters) {
    const std::string_view key = param.key;
    if (key == "priority") {
      int64_t level = -1;
      if (param.choice == inference::InferParameter::kUint64Param) {
        level = param.uint64_value < static_cast<uint64_t>(kPriorityLevels)
                    ? static_cast<int64_t>(param.uint64_value)
                    : -1;
      } else if (param.choice == inference::InferParameter::kInt64Param) {
        level = param.int64_value;
      }
      if (level < 0 || level >= kPriorityLevels) {
        return Invalid("parameter 'priority' must be an integer in [0, " +
                       std::to_string(kPriorityLevels - 1) + "]");
      }
      out->priority = level == 0 ? 0 : static_cast<int>(kPriorityLevels - level);
    } else if (key == "timeout") {
      int64_t timeout_us = -1;
      if (param.choice == inference::InferParameter::kInt64Param) {
        timeout_us = param.int64_value;
      } else if (param.choice == inference::InferParameter::kUint64Param &&
                 param.uint64_value <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        timeout_us = static_cast<int64_t>(param.uint64_value);
      }
      if (timeout_us < 0) {
        return Invalid("parameter 'timeout' must be a non-negative integer (microseconds)");
      }
      // 0 in KServe means "no timeout given": keep the model's default.
      out->timeout_us = timeout_us == 0 ? -1 : timeout_us;
    } else if (key == kEnableFinalResponseParameter) {
      if (param.choice != inference::InferParameter::kBoolParam) {
        return Invalid("parameter " + QuoteForMessage(key) + " must be a bool");
      }
    } else if (key.rfind("sequence_", 0) == 0) {
      return Invalid("parameter " + QuoteForMessage(key) +
                     ": sequence batching is not supported by this server");
    }
    // Other parameters carry no meaning for this engine and are ignored, as KServe allows.
  }
  return Status::Ok();
}

Status DecodeInput(const InferInputView& in, const std::string_view* raw,
                   const ServerLimits& limits, HostTensor* out) {
  const ElementType type = ElementTypeFromKServe(in.datatype);
  if (type == ElementType::kUndefined) {
    return Invalid(Named("input", in.name) + ": unsupported datatype " +
                   QuoteForMessage(in.datatype) +
                   "; expected one of BOOL, UINT8, UINT16, UINT32, UINT64, INT8, INT16, INT32, "
                   "INT64, FP16, FP32, FP64, BYTES");
  }
  std::vector<int64_t> shape = in.shape;
  for (int64_t d : shape) {
    if (d < 0) {
      return Invalid(Named("input", in.name) + ": shape " + ShapeToString(shape) +
                     " has a negative dimension");
    }
  }
  const int64_t count = CheckedElementCount(shape, limits.max_tensor_elements);
  if (count < 0) {
    // A zero dimension leaves no element, but the others still size the rows that code after
    // this computes: refused all the same, and told as what it is.
    const bool empty = std::find(shape.begin(), shape.end(), 0) != shape.end();
    return Invalid(Named("input", in.name) + ": shape " + ShapeToString(shape) +
                   (empty ? " has no element, but its other dimensions multiply to more than "
                            "the limit of "
                          : " has more than the limit of ") +
                   std::to_string(limits.max_tensor_elements) + " elements");
  }
  if (type == ElementType::kString && count > limits.max_string_elements) {
    return Invalid(Named("input", in.name) + ": shape " + ShapeToString(shape) + " has " +
                   std::to_string(count) + " BYTES elements; the limit is " +
                   std::to_string(limits.max_string_elements));
  }
  if (raw != nullptr) {
    if (in.contents != nullptr) {
      return Invalid(Named("input", in.name) +
                     ": data given both in 'contents' and in raw_input_contents");
    }
    if (type == ElementType::kString) {
      HostTensor t;
      t.type = type;
      t.shape = std::move(shape);
      Status s = DecodeBytesElements(in.name, *raw, count, &t.strings);
      if (!s.ok()) return s;
      *out = std::move(t);
      return Status::Ok();
    }
    // Checked: the element limit is configurable, and a wrapped product could match.
    uint64_t expected = 0;
    const bool overflow =
        __builtin_mul_overflow(static_cast<uint64_t>(count), ElementSize(type), &expected);
    if (overflow || raw->size() != expected) {
      return Invalid(Named("input", in.name) + ": raw_input_contents holds " +
                     std::to_string(raw->size()) + " bytes; shape " + ShapeToString(shape) +
                     " of " + std::string(in.datatype) + " needs " +
                     (overflow ? std::string("more than 2^64") : std::to_string(expected)));
    }
    if (type == ElementType::kBool) {
      // One byte per element, 0 or 1: another byte would reach the model as a bool that is
      // neither (ONNX Runtime's Not of 2 answered 3).
      for (size_t i = 0; i < raw->size(); ++i) {
        const auto byte = static_cast<unsigned char>((*raw)[i]);
        if (byte > 1) {
          return Invalid(Named("input", in.name) + ": BOOL element " + std::to_string(i) +
                         " is the byte " + std::to_string(byte) +
                         "; a BOOL element is 0 (false) or 1 (true)");
        }
      }
    }
    out->type = type;
    out->shape = std::move(shape);
    out->data = raw->data();  // borrowed: the request's bytes outlive the request
    out->byte_size = raw->size();
    return Status::Ok();
  }
  if (type == ElementType::kFloat16) {
    return Invalid(Named("input", in.name) +
                   ": FP16 has no typed 'contents' field; send it in raw_input_contents");
  }
  // No raw buffer and no 'contents': only an empty tensor matches (as an empty 'contents').
  const inference::InferTensorContents& contents =
      in.contents != nullptr ? *in.contents : inference::InferTensorContents::default_instance();
  const int64_t given = TypedCount(type, contents);
  if (given < 0) {
    return Invalid(Named("input", in.name) + ": 'contents' uses a field that does not match "
                   "datatype " + std::string(in.datatype));
  }
  if (given != count) {
    return Invalid(Named("input", in.name) + ": 'contents' holds " + std::to_string(given) +
                   " elements; shape " + ShapeToString(shape) + " needs " + std::to_string(count));
  }
  if (!TypedValuesFit(type, contents)) {
    return Invalid(Named("input", in.name) + ": a value in 'contents' is out of range for " +
                   std::string(in.datatype));
  }
  *out = FromTyped(type, shape, contents);
  return Status::Ok();
}

}  // namespace

bool FinalResponseFlagRequested(const InferRequestView& request) {
  for (const InferParameterView& param : request.parameters) {
    if (param.key == kEnableFinalResponseParameter) {
      return param.choice == inference::InferParameter::kBoolParam && param.bool_value;
    }
  }
  return false;
}

const char* KServeDatatype(ElementType type) {
  for (const auto& t : kTypeNames) {
    if (t.type == type) return t.kserve;
  }
  return "";
}

ElementType ElementTypeFromKServe(std::string_view datatype) {
  for (const auto& t : kTypeNames) {
    if (datatype == t.kserve) return t.type;
  }
  return ElementType::kUndefined;
}

namespace {

void ViewParameters(const google::protobuf::Map<std::string, inference::InferParameter>& params,
                    std::vector<InferParameterView>* out) {
  out->clear();
  for (const auto& [key, param] : params) {
    InferParameterView p;
    p.key = key;
    p.choice = param.parameter_choice_case();
    p.int64_value = param.int64_param();
    p.uint64_value = param.uint64_param();
    p.bool_value = param.bool_param();
    out->push_back(p);
  }
}

// This server has no shared memory (its RPCs answer UNIMPLEMENTED): a tensor that names a
// region is refused rather than read from, or answered into, the message.
Status RefuseSharedMemory(std::string_view what, std::string_view name,
                          const std::vector<InferParameterView>& params) {
  for (const InferParameterView& param : params) {
    if (param.key.rfind("shared_memory_", 0) == 0) {
      return Status(StatusCode::kInvalidInput,
                    Named(what, name) + ": parameter " + QuoteForMessage(param.key) +
                        ": shared memory is not supported by this server; send the data in "
                        "the request");
    }
  }
  return Status::Ok();
}

}  // namespace

void ViewInferRequest(const inference::ModelInferRequest& message, InferRequestView* out) {
  out->model_name = message.model_name();
  out->model_version = message.model_version();
  out->id = message.id();
  ViewParameters(message.parameters(), &out->parameters);
  out->inputs.clear();
  out->inputs.reserve(static_cast<size_t>(message.inputs_size()));
  for (const auto& in : message.inputs()) {
    InferInputView& view = out->inputs.emplace_back();
    view.name = in.name();
    view.datatype = in.datatype();
    view.shape.assign(in.shape().begin(), in.shape().end());
    view.contents = in.has_contents() ? &in.contents() : nullptr;
    ViewParameters(in.parameters(), &view.parameters);
  }
  out->output_names.assign(message.outputs().size(), std::string_view());
  out->output_parameters.clear();
  for (int i = 0; i < message.outputs_size(); ++i) {
    out->output_names[static_cast<size_t>(i)] = message.outputs(i).name();
    if (message.outputs(i).parameters().empty()) continue;
    out->output_parameters.resize(out->output_names.size());
    ViewParameters(message.outputs(i).parameters(),
                   &out->output_parameters[static_cast<size_t>(i)]);
  }
  out->raw_input_contents.assign(message.raw_input_contents().begin(),
                                 message.raw_input_contents().end());
}

Status DecodeInferRequest(const InferRequestView& request, const ServerLimits& limits,
                          DecodedRequest* out) {
  const size_t n_inputs = request.inputs.size();
  const size_t n_raw = request.raw_input_contents.size();
  if (n_raw != 0 && n_raw != n_inputs) {
    return Invalid("raw_input_contents has " + std::to_string(n_raw) +
                   " buffers for " + std::to_string(n_inputs) +
                   " inputs; send one buffer per input, in the order of the inputs, or none");
  }
  Status s = DecodeParameters(request, out);
  if (!s.ok()) return s;
  for (size_t i = 0; i < request.output_parameters.size(); ++i) {
    s = RefuseSharedMemory("requested output", request.output_names[i],
                           request.output_parameters[i]);
    if (!s.ok()) return s;
  }
  std::vector<int64_t> class_counts;
  s = ClassCounts(request, &class_counts);
  if (!s.ok()) return s;
  out->inputs.clear();
  out->inputs.reserve(n_inputs);
  for (size_t i = 0; i < n_inputs; ++i) {
    const InferInputView& in = request.inputs[i];
    s = RefuseSharedMemory("input", in.name, in.parameters);
    if (!s.ok()) return s;
    out->inputs.emplace_back(std::string(in.name), HostTensor{});
    s = DecodeInput(in, n_raw ? &request.raw_input_contents[i] : nullptr, limits,
                    &out->inputs.back().second);
    if (!s.ok()) return s;
  }
  out->output_names.assign(request.output_names.begin(), request.output_names.end());
  return Status::Ok();
}

Status DecodeBytesElements(std::string_view tensor, std::string_view raw, int64_t count,
                           std::vector<std::string>* out) {
  out->clear();
  // Each element takes at least its 4-byte prefix: never reserve more than `raw` can hold.
  out->reserve(std::min(static_cast<size_t>(count), raw.size() / 4));
  size_t pos = 0;
  for (int64_t i = 0; i < count; ++i) {
    if (raw.size() - pos < 4) {
      return Invalid(Named("input", tensor) + ": BYTES data ends inside the length prefix of "
                     "element " + std::to_string(i) + " of " + std::to_string(count));
    }
    uint32_t length = 0;
    std::memcpy(&length, raw.data() + pos, 4);  // little-endian host
    pos += 4;
    if (raw.size() - pos < length) {
      return Invalid(Named("input", tensor) + ": BYTES element " + std::to_string(i) +
                     " declares " + std::to_string(length) + " bytes but only " +
                     std::to_string(raw.size() - pos) + " remain");
    }
    out->emplace_back(raw.data() + pos, length);
    pos += length;
  }
  if (pos != raw.size()) {
    return Invalid(Named("input", tensor) + ": " + std::to_string(raw.size() - pos) +
                   " bytes left after the " + std::to_string(count) +
                   " BYTES elements the shape calls for");
  }
  return Status::Ok();
}

size_t BytesElementsSize(const std::vector<std::string>& elements) {
  size_t total = 0;
  for (const auto& e : elements) total += 4 + e.size();
  return total;
}

char* WriteBytesElements(const std::vector<std::string>& elements, char* out) {
  for (const auto& e : elements) {
    const auto length = static_cast<uint32_t>(e.size());
    std::memcpy(out, &length, 4);  // little-endian host
    out += 4;
    if (!e.empty()) std::memcpy(out, e.data(), e.size());
    out += e.size();
  }
  return out;
}

}  // namespace engine::server
