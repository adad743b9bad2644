#include "session.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include "status.h"

namespace engine {
namespace {

GraphOptimizationLevel ParseOptimizationLevel(const std::string& level) {
  if (level == "disable") return ORT_DISABLE_ALL;
  if (level == "basic") return ORT_ENABLE_BASIC;
  if (level == "extended") return ORT_ENABLE_EXTENDED;
  if (level == "all") return ORT_ENABLE_ALL;
  throw CoreError(StatusCode::kInvalidConfig,
                  "graph_optimization_level must be disable, basic, extended or all; was '" +
                      level + "'");
}

void AppendCuda(Ort::SessionOptions& options, int device_id) {
  OrtRuntime& runtime = OrtRuntime::Get();
  if (!runtime.HasProvider("CUDAExecutionProvider")) {
    throw CoreError(StatusCode::kUnsupported,
                    "the CUDA execution provider was requested but the loaded ONNX Runtime (" +
                        runtime.library_path() +
                        ") was built without it; install the `gpu` extra (onnxruntime-gpu) "
                        "instead of `cpu`, or ask for providers=['cpu']");
  }
  OrtCUDAProviderOptionsV2* cuda = nullptr;
  Ort::ThrowOnError(Ort::GetApi().CreateCUDAProviderOptions(&cuda));
  std::unique_ptr<OrtCUDAProviderOptionsV2, void (*)(OrtCUDAProviderOptionsV2*)> holder(
      cuda, [](OrtCUDAProviderOptionsV2* p) { Ort::GetApi().ReleaseCUDAProviderOptions(p); });
  const std::string device = std::to_string(device_id);
  const char* keys[] = {"device_id"};
  const char* values[] = {device.c_str()};
  Ort::ThrowOnError(Ort::GetApi().UpdateCUDAProviderOptions(cuda, keys, values, 1));
  // Fails here, with ORT's reason, when the CUDA libraries or a GPU are missing.
  options.AppendExecutionProvider_CUDA_V2(*cuda);
}

Ort::SessionOptions MakeOrtOptions(const SessionOptions& options,
                                   std::vector<std::string>* registered) {
  if (options.intra_op_threads < 0 || options.inter_op_threads < 0) {
    throw CoreError(StatusCode::kInvalidConfig, "thread counts must be >= 0; were intra=" +
                                                    std::to_string(options.intra_op_threads) +
                                                    " inter=" +
                                                    std::to_string(options.inter_op_threads));
  }
  Ort::SessionOptions ort;
  ort.SetIntraOpNumThreads(options.intra_op_threads);
  ort.SetInterOpNumThreads(options.inter_op_threads);
  ort.SetGraphOptimizationLevel(ParseOptimizationLevel(options.graph_optimization_level));
  const char* spin = options.allow_spinning ? "1" : "0";
  ort.AddConfigEntry("session.intra_op.allow_spinning", spin);
  ort.AddConfigEntry("session.inter_op.allow_spinning", spin);
  for (const auto& provider : options.providers) {
    if (provider == "cuda") {
      try {
        AppendCuda(ort, options.cuda_device_id);
      } catch (const Ort::Exception& e) {
        throw CoreError(StatusCode::kUnsupported,
                        std::string("the CUDA execution provider could not start: ") + e.what());
      }
      registered->push_back("cuda");
    } else if (provider == "cpu") {
      // CPU is ORT's implicit fallback; nothing to append.
    } else {
      throw CoreError(StatusCode::kInvalidConfig,
                      "unknown execution provider '" + provider + "'; use 'cpu' or 'cuda'");
    }
  }
  registered->push_back("cpu");
  return ort;
}

std::vector<int64_t> ShapeOf(const Ort::ConstTensorTypeAndShapeInfo& info) {
  std::vector<int64_t> shape = info.GetShape();
  for (auto& d : shape) {
    if (d < 0) d = -1;  // ORT reports symbolic dims as -1 already; normalise anything negative
  }
  return shape;
}

std::vector<TensorInfo> Describe(const Ort::Session& session, bool inputs) {
  const size_t count = inputs ? session.GetInputCount() : session.GetOutputCount();
  Ort::AllocatorWithDefaultOptions allocator;
  std::vector<TensorInfo> result;
  for (size_t i = 0; i < count; ++i) {
    TensorInfo info;
    info.name = inputs ? session.GetInputNameAllocated(i, allocator).get()
                       : session.GetOutputNameAllocated(i, allocator).get();
    Ort::TypeInfo type_info = inputs ? session.GetInputTypeInfo(i) : session.GetOutputTypeInfo(i);
    if (type_info.GetONNXType() != ONNX_TYPE_TENSOR) {
      throw CoreError(StatusCode::kUnsupported,
                      std::string(inputs ? "input '" : "output '") + info.name +
                          "' is not a tensor (sequences and maps are not supported; for a "
                          "scikit-learn classifier export with zipmap=False)");
    }
    auto tensor_info = type_info.GetTensorTypeAndShapeInfo();
    info.type = ElementTypeFromOnnx(static_cast<int>(tensor_info.GetElementType()));
    if (info.type == ElementType::kUndefined) {
      throw CoreError(StatusCode::kUnsupported,
                      std::string(inputs ? "input '" : "output '") + info.name +
                          "' has ONNX element type " +
                          std::to_string(static_cast<int>(tensor_info.GetElementType())) +
                          ", which the engine does not support");
    }
    info.shape = ShapeOf(tensor_info);
    result.push_back(std::move(info));
  }
  return result;
}

// Shares ownership of an ORT output value so numpy can hold its buffer without a copy.
std::shared_ptr<const void> Own(Ort::Value value) {
  auto holder = std::make_shared<Ort::Value>(std::move(value));
  return std::shared_ptr<const void>(holder, holder.get());
}

}  // namespace

Session::Session(std::unique_ptr<Ort::Session> session, std::vector<std::string> providers)
    : session_(std::move(session)), providers_(std::move(providers)) {
  inputs_ = Describe(*session_, true);
  outputs_ = Describe(*session_, false);
  for (const auto& t : inputs_) input_names_storage_.push_back(t.name);
  for (const auto& t : outputs_) output_names_storage_.push_back(t.name);
  for (const auto& n : input_names_storage_) input_names_.push_back(n.c_str());
  for (const auto& n : output_names_storage_) output_names_.push_back(n.c_str());
}

std::unique_ptr<Session> Session::FromPath(const std::string& path,
                                           const SessionOptions& options) {
  OrtRuntime& runtime = OrtRuntime::Get();
  std::vector<std::string> registered;
  Ort::SessionOptions ort_options = MakeOrtOptions(options, &registered);
  try {
    auto session = std::make_unique<Ort::Session>(runtime.env(), path.c_str(), ort_options);
    return std::unique_ptr<Session>(new Session(std::move(session), std::move(registered)));
  } catch (const Ort::Exception& e) {
    throw CoreError(StatusCode::kLoadFailed,
                    "cannot load model '" + path + "': " + e.what());
  }
}

std::unique_ptr<Session> Session::FromBytes(const std::string& bytes,
                                            const SessionOptions& options) {
  OrtRuntime& runtime = OrtRuntime::Get();
  std::vector<std::string> registered;
  Ort::SessionOptions ort_options = MakeOrtOptions(options, &registered);
  try {
    auto session = std::make_unique<Ort::Session>(runtime.env(), bytes.data(), bytes.size(),
                                                  ort_options);
    return std::unique_ptr<Session>(new Session(std::move(session), std::move(registered)));
  } catch (const Ort::Exception& e) {
    throw CoreError(StatusCode::kLoadFailed,
                    std::string("cannot load model from bytes: ") + e.what());
  }
}

namespace {

// Options that keep ORT from logging a failed run (ORT logs it as an error), or ORT's
// defaults.
const Ort::RunOptions& RunOptionsFor(bool quiet) {
  static const Ort::RunOptions quiet_options = [] {
    Ort::RunOptions options;
    options.SetRunLogSeverityLevel(ORT_LOGGING_LEVEL_FATAL);
    return options;
  }();
  static const Ort::RunOptions default_options{nullptr};
  return quiet ? quiet_options : default_options;
}

const Ort::MemoryInfo& CpuMemory() {
  static const Ort::MemoryInfo cpu_memory =
      Ort::MemoryInfo::CreateCpu(OrtArenaAllocator, OrtMemTypeDefault);
  return cpu_memory;
}

// An ORT value over a numeric tensor's buffer (no copy), or a copy of a string tensor.
Ort::Value ValueOf(const HostTensor& t) {
  static const uint8_t empty_buffer[8] = {};
  const auto onnx_type = static_cast<ONNXTensorElementDataType>(t.type);
  if (t.type != ElementType::kString) {
    void* data = const_cast<void*>(t.data != nullptr ? t.data : empty_buffer);
    return Ort::Value::CreateTensor(CpuMemory(), data, t.byte_size, t.shape.data(),
                                    t.shape.size(), onnx_type);
  }
  Ort::AllocatorWithDefaultOptions allocator;
  Ort::Value v = Ort::Value::CreateTensor(allocator, t.shape.data(), t.shape.size(), onnx_type);
  // Copy each element with its length: strings may hold NUL bytes (BYTES over gRPC).
  for (size_t i = 0; i < t.strings.size(); ++i) {
    const std::string& element = t.strings[i];
    char* buffer = v.GetResizedStringTensorElementBuffer(i, element.size());
    if (!element.empty()) std::memcpy(buffer, element.data(), element.size());
  }
  return v;
}

}  // namespace

void Session::CheckInputCount(size_t count) const {
  if (count != inputs_.size()) {
    throw CoreError(StatusCode::kInternal, "Session::Run got " + std::to_string(count) +
                                               " inputs for a model with " +
                                               std::to_string(inputs_.size()));
  }
}

std::vector<Ort::Value> Session::InputValues(const std::vector<const HostTensor*>& inputs) const {
  CheckInputCount(inputs.size());
  std::vector<Ort::Value> values;
  values.reserve(inputs.size());
  for (const HostTensor* t : inputs) values.push_back(ValueOf(*t));
  return values;
}

std::vector<const char*> Session::OutputNames(const std::vector<size_t>& output_indices) const {
  if (output_indices.empty()) return output_names_;
  std::vector<const char*> names;
  names.reserve(output_indices.size());
  for (size_t i : output_indices) names.push_back(output_names_.at(i));
  return names;
}

std::vector<HostTensor> Session::Run(const std::vector<const HostTensor*>& inputs,
                                     const std::vector<size_t>& output_indices,
                                     bool quiet) const {
  try {
    std::vector<Ort::Value> values = InputValues(inputs);
    const std::vector<const char*> names = OutputNames(output_indices);
    std::vector<Ort::Value> outputs =
        session_->Run(RunOptionsFor(quiet), input_names_.data(), values.data(),
                      values.size(), names.data(), names.size());
    std::vector<HostTensor> result;
    result.reserve(outputs.size());
    for (auto& value : outputs) {
      HostTensor t;
      auto info = value.GetTensorTypeAndShapeInfo();
      t.type = ElementTypeFromOnnx(static_cast<int>(info.GetElementType()));
      t.shape = info.GetShape();
      const size_t count = info.GetElementCount();
      if (t.type == ElementType::kString) {
        t.strings.resize(count);
        for (size_t i = 0; i < count; ++i) t.strings[i] = value.GetStringTensorElement(i);
      } else {
        t.byte_size = count * ElementSize(t.type);
        t.data = value.GetTensorRawData();
        t.owner = Own(std::move(value));
      }
      result.push_back(std::move(t));
    }
    return result;
  } catch (const Ort::Exception& e) {
    throw CoreError(StatusCode::kExecutionFailed, std::string("ONNX Runtime failed: ") + e.what());
  } catch (const std::out_of_range&) {
    throw CoreError(StatusCode::kInternal, "Session::Run: output index out of range");
  }
}

void Session::RunInto(const std::vector<const HostTensor*>& inputs,
                      const std::vector<size_t>& output_indices,
                      std::vector<HostTensor>& outputs, bool quiet) const {
  try {
    std::vector<Ort::Value> values = InputValues(inputs);
    const std::vector<const char*> names = OutputNames(output_indices);
    if (outputs.size() != names.size()) {
      throw CoreError(StatusCode::kInternal,
                      "Session::RunInto got " + std::to_string(outputs.size()) +
                          " output buffers for " + std::to_string(names.size()) + " outputs");
    }
    std::vector<Ort::Value> targets;
    targets.reserve(outputs.size());
    for (const HostTensor& t : outputs) {
      if (t.type == ElementType::kString || t.data == nullptr) {
        throw CoreError(StatusCode::kInternal, "Session::RunInto needs numeric output buffers");
      }
      targets.push_back(ValueOf(t));
    }
    session_->Run(RunOptionsFor(quiet), input_names_.data(), values.data(), values.size(),
                  names.data(), targets.data(), targets.size());
  } catch (const Ort::Exception& e) {
    throw CoreError(StatusCode::kExecutionFailed, std::string("ONNX Runtime failed: ") + e.what());
  } catch (const std::out_of_range&) {
    throw CoreError(StatusCode::kInternal, "Session::RunInto: output index out of range");
  }
}

}  // namespace engine
