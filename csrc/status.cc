#include "status.h"

namespace engine {

const char* StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "OK";
    case StatusCode::kInvalidInput: return "INVALID_INPUT";
    case StatusCode::kInvalidConfig: return "INVALID_CONFIG";
    case StatusCode::kNotFound: return "NOT_FOUND";
    case StatusCode::kLoadFailed: return "LOAD_FAILED";
    case StatusCode::kUnsupported: return "UNSUPPORTED";
    case StatusCode::kOverloaded: return "OVERLOADED";
    case StatusCode::kUnavailable: return "UNAVAILABLE";
    case StatusCode::kDeadlineExceeded: return "DEADLINE_EXCEEDED";
    case StatusCode::kCancelled: return "CANCELLED";
    case StatusCode::kExecutionFailed: return "EXECUTION_FAILED";
    case StatusCode::kInternal: return "INTERNAL";
  }
  return "UNKNOWN_CODE";
}

}  // namespace engine
