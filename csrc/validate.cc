#include "validate.h"

#include <algorithm>
#include <limits>

#include "status.h"

namespace engine {
namespace {

[[noreturn]] void Invalid(const std::string& message) {
  throw CoreError(StatusCode::kInvalidInput, message);
}

std::string SignatureNames(const std::vector<TensorInfo>& signature) {
  std::string names;
  for (const auto& t : signature) names += (names.empty() ? "'" : ", '") + t.name + "'";
  return names;
}

}  // namespace

const TensorInfo& FindInputSpec(const std::vector<TensorInfo>& signature, std::string_view name) {
  for (const auto& spec : signature) {
    if (spec.name == name) return spec;
  }
  Invalid("unknown input '" + std::string(name) + "'; the model's inputs are " +
          SignatureNames(signature));
}

void CheckElementType(const TensorInfo& spec, ElementType type) {
  if (type != spec.type) {
    Invalid("input '" + spec.name + "': expected dtype " + ElementTypeName(spec.type) + ", got " +
            ElementTypeName(type) + " (no implicit casts)");
  }
}

void CheckTensor(const TensorInfo& spec, const HostTensor& tensor, bool skip_dim0) {
  // Built only on failure: this runs for every input of every request.
  struct Where {
    const std::string& name;
    operator std::string() const { return "input '" + name + "'"; }
    std::string operator+(const std::string& rest) const { return std::string(*this) + rest; }
    std::string operator+(const char* rest) const { return std::string(*this) + rest; }
  } where{spec.name};
  CheckElementType(spec, tensor.type);
  if (!spec.shape.empty() || !tensor.shape.empty()) {
    if (tensor.shape.size() != spec.shape.size()) {
      Invalid(where + ": expected rank " + std::to_string(spec.shape.size()) + " (shape " +
              ShapeToString(spec.shape) + "), got rank " + std::to_string(tensor.shape.size()) +
              " (shape " + ShapeToString(tensor.shape) + ")");
    }
  }
  for (size_t i = 0; i < tensor.shape.size(); ++i) {
    if (tensor.shape[i] < 0) {
      Invalid(where + ": dimension " + std::to_string(i) + " is negative in shape " +
              ShapeToString(tensor.shape));
    }
    if (i == 0 && skip_dim0) continue;
    if (spec.shape[i] >= 0 && spec.shape[i] != tensor.shape[i]) {
      Invalid(where + ": expected shape " + ShapeToString(spec.shape) + ", got " +
              ShapeToString(tensor.shape) + " (dimension " + std::to_string(i) + " must be " +
              std::to_string(spec.shape[i]) + ")");
    }
  }
  const size_t element_size = ElementSize(tensor.type);
  const int64_t limit = tensor.type == ElementType::kString
                            ? std::numeric_limits<int64_t>::max()
                            : std::numeric_limits<int64_t>::max() /
                                  static_cast<int64_t>(element_size);
  const int64_t count = CheckedElementCount(tensor.shape, limit);
  if (count < 0) Invalid(where + ": shape " + ShapeToString(tensor.shape) + " is too large");
  if (tensor.type == ElementType::kString) {
    if (static_cast<int64_t>(tensor.strings.size()) != count) {
      Invalid(where + ": shape " + ShapeToString(tensor.shape) + " needs " +
              std::to_string(count) + " strings, got " + std::to_string(tensor.strings.size()));
    }
  } else {
    const auto expected = static_cast<size_t>(count) * element_size;
    if (tensor.byte_size != expected) {
      Invalid(where + ": shape " + ShapeToString(tensor.shape) + " of " +
              ElementTypeName(tensor.type) + " needs " + std::to_string(expected) +
              " bytes, got " + std::to_string(tensor.byte_size));
    }
    if (expected > 0 && tensor.data == nullptr) Invalid(where + ": no data");
  }
}

namespace {

const HostTensor* TensorOf(const HostTensor& t) { return &t; }
const HostTensor* TensorOf(const HostTensor* t) { return t; }

template <typename Named>
void Bind(const std::vector<TensorInfo>& signature, const Named& named, bool skip_dim0,
          std::vector<const HostTensor*>& bound) {
  bound.assign(signature.size(), nullptr);
  for (const auto& [name, value] : named) {
    const HostTensor* tensor = TensorOf(value);
    const auto index = static_cast<size_t>(&FindInputSpec(signature, name) - signature.data());
    if (bound[index] != nullptr) Invalid("input '" + name + "' is given more than once");
    CheckTensor(signature[index], *tensor, skip_dim0);
    bound[index] = tensor;
  }
  std::string missing;
  for (size_t i = 0; i < signature.size(); ++i) {
    if (bound[i] == nullptr) missing += (missing.empty() ? "'" : ", '") + signature[i].name + "'";
  }
  if (!missing.empty()) Invalid("missing input(s) " + missing);
}

}  // namespace

std::vector<const HostTensor*> BindInputs(const std::vector<TensorInfo>& signature,
                                          const std::vector<NamedTensorRef>& named,
                                          bool skip_dim0) {
  std::vector<const HostTensor*> bound;
  Bind(signature, named, skip_dim0, bound);
  return bound;
}

std::vector<const HostTensor*> BindInputs(const std::vector<TensorInfo>& signature,
                                          const std::vector<NamedTensor>& named,
                                          bool skip_dim0) {
  std::vector<const HostTensor*> bound;
  Bind(signature, named, skip_dim0, bound);
  return bound;
}

void BindInputsInto(const std::vector<TensorInfo>& signature,
                    const std::vector<NamedTensor>& named, std::vector<const HostTensor*>* bound) {
  Bind(signature, named, /*skip_dim0=*/false, *bound);
}

std::vector<size_t> SelectOutputs(const std::vector<TensorInfo>& outputs,
                                  const std::vector<std::string>& requested) {
  std::vector<size_t> indices;
  SelectOutputsInto(outputs, requested, &indices);
  return indices;
}

void SelectOutputsInto(const std::vector<TensorInfo>& outputs,
                       const std::vector<std::string>& requested, std::vector<size_t>* indices) {
  indices->clear();
  if (requested.empty()) {
    for (size_t i = 0; i < outputs.size(); ++i) indices->push_back(i);
    return;
  }
  for (const auto& name : requested) {
    size_t index = outputs.size();
    for (size_t i = 0; i < outputs.size(); ++i) {
      if (outputs[i].name == name) index = i;
    }
    if (index == outputs.size()) {
      // A repeated unknown name is reported as unknown: that is the first thing to fix.
      Invalid("unknown output '" + name + "'; the model's outputs are " + SignatureNames(outputs));
    }
    // A model has few outputs: a scan of those selected so far needs no set (no allocation).
    if (std::find(indices->begin(), indices->end(), index) != indices->end()) {
      Invalid("output '" + name + "' is requested more than once");
    }
    indices->push_back(index);
  }
}

}  // namespace engine
