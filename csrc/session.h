// One ONNX Runtime session: load, introspect, run. Per-instance state in Triton's terms.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "element_type.h"
#include "ort_runtime.h"
#include "tensor.h"

namespace engine {

struct SessionOptions {
  int intra_op_threads = 1;  // 0 = ORT's default (one per core)
  int inter_op_threads = 1;  // 0 = ORT's default
  bool allow_spinning = false;  // ORT's spinning pool burns CPU between runs: off by default
  // "disable" | "basic" | "extended" | "all"
  std::string graph_optimization_level = "all";
  // In order of preference, each "cpu" or "cuda". CPU is always appended as the fallback.
  std::vector<std::string> providers = {"cpu"};
  int cuda_device_id = 0;
};

// A named input or output of the model. `shape` has -1 for symbolic or unknown dims.
struct TensorInfo {
  std::string name;
  ElementType type = ElementType::kUndefined;
  std::vector<int64_t> shape;
};

// Immutable after construction; Run() is thread-safe (ORT allows concurrent runs on a session).
class Session {
 public:
  // Load from a file or from serialized model bytes. Blocks while ORT builds the session.
  // Throws CoreError: kLoadFailed (bad file or model), kUnsupported (CUDA requested but not
  // available, or an input/output of a type the engine cannot run), kInvalidConfig (options).
  static std::unique_ptr<Session> FromPath(const std::string& path, const SessionOptions& options);
  static std::unique_ptr<Session> FromBytes(const std::string& bytes,
                                            const SessionOptions& options);

  const std::vector<TensorInfo>& inputs() const { return inputs_; }
  const std::vector<TensorInfo>& outputs() const { return outputs_; }
  // Providers actually registered, e.g. {"cuda", "cpu"}.
  const std::vector<std::string>& providers() const { return providers_; }

  // Runs the model. `inputs[i]` feeds inputs()[i]; the caller has validated them
  // (ValidateInputs) and keeps their memory alive for the call; no input is copied except
  // strings. `output_indices` selects outputs by position (empty = all). Blocks until done.
  // Returns outputs in the order requested; numeric outputs share ownership of ORT's buffers.
  // Throws CoreError(kExecutionFailed) with ORT's message when ORT fails.
  // `quiet`: ORT does not log the run's failure (the caller reports it).
  std::vector<HostTensor> Run(const std::vector<const HostTensor*>& inputs,
                              const std::vector<size_t>& output_indices = {},
                              bool quiet = false) const;

  // As Run, with ORT writing each selected output into the buffer of `outputs[k]`, which the
  // caller allocated (numeric, with the type and shape the run will produce). A shape that
  // differs from the run's fails it (kExecutionFailed, ORT's message): for outputs whose
  // shape the caller knows in advance, such as a batch's rows times declared static dims.
  void RunInto(const std::vector<const HostTensor*>& inputs,
               const std::vector<size_t>& output_indices, std::vector<HostTensor>& outputs,
               bool quiet = false) const;

 private:
  Session(std::unique_ptr<Ort::Session> session, std::vector<std::string> providers);
  void CheckInputCount(size_t count) const;
  std::vector<Ort::Value> InputValues(const std::vector<const HostTensor*>& inputs) const;
  // Names of the selected outputs (all for an empty selection); throws std::out_of_range.
  std::vector<const char*> OutputNames(const std::vector<size_t>& output_indices) const;
  std::unique_ptr<Ort::Session> session_;
  std::vector<TensorInfo> inputs_;
  std::vector<TensorInfo> outputs_;
  std::vector<std::string> input_names_storage_;
  std::vector<const char*> input_names_;
  std::vector<std::string> output_names_storage_;
  std::vector<const char*> output_names_;
  std::vector<std::string> providers_;
};

}  // namespace engine
