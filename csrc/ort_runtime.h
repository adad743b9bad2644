// The process-wide ONNX Runtime: the dlopen'ed library, its API table and one Ort::Env.
//
// The core has no link-time dependency on ONNX Runtime: Init() dlopens the libonnxruntime.so
// that the installed wheel ships (Python passes its path) and asks it for the API version our
// headers were written against. Everything else in the core uses the ORT C++ wrappers, which
// read the API table that Init() installs (ORT_API_MANUAL_INIT).
#pragma once

#define ORT_API_MANUAL_INIT
#include <onnxruntime_cxx_api.h>
#undef ORT_API_MANUAL_INIT

#include <string>
#include <vector>

namespace engine {

class OrtRuntime {
 public:
  // Loads the library once per process. Thread-safe. A second call with the same path is a
  // no-op; with a different path it throws CoreError(kInvalidConfig): one ORT per process.
  // Throws CoreError(kLoadFailed) when the file cannot be loaded or lacks the API version.
  static void Init(const std::string& library_path);

  // True once Init() succeeded.
  static bool Initialized();

  // The runtime; throws CoreError(kUnavailable) before Init().
  static OrtRuntime& Get();

  Ort::Env& env() { return env_; }
  const std::string& library_path() const { return library_path_; }
  // ORT's own version string, e.g. "1.32.0".
  std::string version() const;
  // Providers compiled into the loaded library, e.g. {"CPUExecutionProvider"}.
  std::vector<std::string> available_providers() const;
  bool HasProvider(const std::string& name) const;

 private:
  OrtRuntime(std::string library_path, const OrtApiBase* base);
  std::string library_path_;
  const OrtApiBase* base_;
  Ort::Env env_;
};

}  // namespace engine
