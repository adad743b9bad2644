// Validation of request tensors against a model's signature, before anything reaches ORT.
//
// Every check throws CoreError(kInvalidInput) whose message names the input, what was
// expected and what came. Shared by the Python API and the gRPC server so both reject the
// same requests with the same words.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "session.h"
#include "tensor.h"

namespace engine {

using NamedTensorRef = std::pair<std::string, const HostTensor*>;
using NamedTensor = std::pair<std::string, HostTensor>;

// Checks one tensor: element type (no casts), rank, fixed dims, non-negative dims, and that
// byte_size (numeric) or strings.size() (string) matches the shape. `skip_dim0` leaves dim 0
// unchecked against the signature (a batched model whose batch size is set by the config).
void CheckTensor(const TensorInfo& spec, const HostTensor& tensor, bool skip_dim0 = false);

// The spec of input `name`, or kInvalidInput "unknown input ..." naming the model's inputs.
const TensorInfo& FindInputSpec(const std::vector<TensorInfo>& signature, std::string_view name);
// kInvalidInput "expected dtype ..." unless `type` is the spec's type (no implicit casts).
void CheckElementType(const TensorInfo& spec, ElementType type);

// Puts `named` in signature order after checking names (unknown, duplicate, missing) and each
// tensor. Returns borrowed pointers into `named`.
std::vector<const HostTensor*> BindInputs(const std::vector<TensorInfo>& signature,
                                          const std::vector<NamedTensorRef>& named,
                                          bool skip_dim0 = false);
// The same for tensors held by name (an InferRequest's inputs): no list of references to build.
std::vector<const HostTensor*> BindInputs(const std::vector<TensorInfo>& signature,
                                          const std::vector<NamedTensor>& named,
                                          bool skip_dim0 = false);
// The same into `bound`, whose capacity is reused (a recycled request's: no allocation).
void BindInputsInto(const std::vector<TensorInfo>& signature,
                    const std::vector<NamedTensor>& named, std::vector<const HostTensor*>* bound);

// Maps requested output names to positions in `outputs`; empty `requested` selects all.
// Throws kInvalidInput for an unknown or repeated name.
std::vector<size_t> SelectOutputs(const std::vector<TensorInfo>& outputs,
                                  const std::vector<std::string>& requested);
// The same into `indices`, whose capacity is reused.
void SelectOutputsInto(const std::vector<TensorInfo>& outputs,
                       const std::vector<std::string>& requested, std::vector<size_t>* indices);

}  // namespace engine
