#include "ort_runtime.h"

#include <dlfcn.h>

#include <memory>
#include <mutex>

#include "log.h"
#include "status.h"

namespace engine {
namespace {

std::mutex g_init_mutex;
OrtRuntime* g_runtime = nullptr;  // never freed: ORT must outlive every session at exit

using GetApiBaseFn = const OrtApiBase* (*)();

// ONNX Runtime's messages through log.h: in the process's format (JSON under --log-json),
// instead of ORT's own coloured lines. `code_location` (ORT's source paths) is left out.
void LogOrtMessage(void* /*param*/, OrtLoggingLevel severity, const char* category,
                   const char* /*logid*/, const char* /*code_location*/, const char* message) {
  const char* level = severity >= ORT_LOGGING_LEVEL_FATAL     ? "CRITICAL"
                      : severity >= ORT_LOGGING_LEVEL_ERROR   ? "ERROR"
                      : severity >= ORT_LOGGING_LEVEL_WARNING ? "WARNING"
                      : severity >= ORT_LOGGING_LEVEL_INFO    ? "INFO"
                                                              : "DEBUG";
  LogLine(level, std::string("onnxruntime.") + (category != nullptr ? category : ""),
          message != nullptr ? message : "");
}

}  // namespace

OrtRuntime::OrtRuntime(std::string library_path, const OrtApiBase* base)
    : library_path_(std::move(library_path)),
      base_(base),
      env_(ORT_LOGGING_LEVEL_WARNING, "engine", &LogOrtMessage, nullptr) {}

void OrtRuntime::Init(const std::string& library_path) {
  std::lock_guard<std::mutex> lock(g_init_mutex);
  if (g_runtime != nullptr) {
    if (g_runtime->library_path_ == library_path) return;
    throw CoreError(StatusCode::kInvalidConfig,
                    "ONNX Runtime is already loaded from " + g_runtime->library_path_ +
                        "; cannot load a second copy from " + library_path);
  }
  // RTLD_LOCAL keeps its symbols away from a second ORT the Python onnxruntime module may load.
  void* handle = dlopen(library_path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* err = dlerror();
    throw CoreError(StatusCode::kLoadFailed, "cannot load ONNX Runtime library " + library_path +
                                                 ": " + (err ? err : "unknown dlopen error"));
  }
  auto get_api_base = reinterpret_cast<GetApiBaseFn>(dlsym(handle, "OrtGetApiBase"));
  if (get_api_base == nullptr) {
    throw CoreError(StatusCode::kLoadFailed,
                    library_path + " is not an ONNX Runtime library (no OrtGetApiBase)");
  }
  const OrtApiBase* base = get_api_base();
  const OrtApi* api = base->GetApi(ORT_API_VERSION);
  if (api == nullptr) {
    throw CoreError(StatusCode::kLoadFailed,
                    "ONNX Runtime " + std::string(base->GetVersionString()) + " at " +
                        library_path + " does not support API version " +
                        std::to_string(ORT_API_VERSION) + " (need ONNX Runtime >= 1." +
                        std::to_string(ORT_API_VERSION) + ")");
  }
  Ort::InitApi(api);
  try {
    g_runtime = new OrtRuntime(library_path, base);
  } catch (const Ort::Exception& e) {
    throw CoreError(StatusCode::kLoadFailed,
                    std::string("cannot create the ONNX Runtime environment: ") + e.what());
  }
}

bool OrtRuntime::Initialized() {
  std::lock_guard<std::mutex> lock(g_init_mutex);
  return g_runtime != nullptr;
}

OrtRuntime& OrtRuntime::Get() {
  std::lock_guard<std::mutex> lock(g_init_mutex);
  if (g_runtime == nullptr) {
    throw CoreError(StatusCode::kUnavailable,
                    "ONNX Runtime is not loaded yet: call engine._core.init_runtime(path) first");
  }
  return *g_runtime;
}

std::string OrtRuntime::version() const { return base_->GetVersionString(); }

std::vector<std::string> OrtRuntime::available_providers() const {
  return Ort::GetAvailableProviders();
}

bool OrtRuntime::HasProvider(const std::string& name) const {
  for (const auto& p : available_providers()) {
    if (p == name) return true;
  }
  return false;
}

}  // namespace engine
