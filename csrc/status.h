// Status codes of the core and the exception that carries them.
//
// The numeric values are part of the Python seam: engine/errors.py maps each to one exception
// class (_CORE_CODES) and the server maps each to one gRPC code. Keep the three in step.
#pragma once

#include <stdexcept>
#include <string>

namespace engine {

enum class StatusCode : int {
  kOk = 0,
  kInvalidInput = 1,    // request data does not match the signature; never retry
  kInvalidConfig = 2,   // a config value is out of range; never retry
  kNotFound = 3,        // no such model / version
  kLoadFailed = 4,      // the model cannot be loaded
  kUnsupported = 5,     // feature missing in this build or machine (e.g. CUDA)
  kOverloaded = 6,      // queue full; retry later
  kUnavailable = 7,     // closed / draining / not ready; retry later
  kDeadlineExceeded = 8,  // deadline passed before execution; the request never ran
  kCancelled = 9,       // cancelled by the caller before execution
  kExecutionFailed = 10,  // ONNX Runtime failed while running
  kInternal = 11,       // a bug in the engine
};

const char* StatusCodeName(StatusCode code);

// A result without a value: kOk or a code and a message for the caller.
class Status {
 public:
  Status() = default;
  Status(StatusCode code, std::string message) : code_(code), message_(std::move(message)) {}
  static Status Ok() { return Status(); }

  bool ok() const { return code_ == StatusCode::kOk; }
  StatusCode code() const { return code_; }
  const std::string& message() const { return message_; }

 private:
  StatusCode code_ = StatusCode::kOk;
  std::string message_;
};

// Thrown by synchronous core calls; the bindings translate it into engine.errors classes.
class CoreError : public std::runtime_error {
 public:
  CoreError(StatusCode code, const std::string& message)
      : std::runtime_error(message), code_(code) {}
  explicit CoreError(const Status& status) : CoreError(status.code(), status.message()) {}
  StatusCode code() const { return code_; }
  Status status() const { return Status(code_, what()); }

 private:
  StatusCode code_;
};

}  // namespace engine
