#include "error_map.h"

#include <array>
#include <atomic>
#include <utility>

#include "names.h"

namespace engine::server {
namespace {

struct Mapping {
  StatusCode engine;
  grpc::StatusCode grpc;
  bool expose_message;  // false: generic text + request id to the client, detail to the log
};

// Keep in step with csrc/status.h and engine/errors.py (GRPC_STATUS); a test walks both.
constexpr std::array<Mapping, 12> kTable = {{
    {StatusCode::kOk, grpc::StatusCode::OK, true},
    {StatusCode::kInvalidInput, grpc::StatusCode::INVALID_ARGUMENT, true},
    {StatusCode::kInvalidConfig, grpc::StatusCode::INVALID_ARGUMENT, true},
    {StatusCode::kNotFound, grpc::StatusCode::NOT_FOUND, true},
    {StatusCode::kLoadFailed, grpc::StatusCode::FAILED_PRECONDITION, false},
    {StatusCode::kUnsupported, grpc::StatusCode::UNIMPLEMENTED, true},
    {StatusCode::kOverloaded, grpc::StatusCode::UNAVAILABLE, true},
    {StatusCode::kUnavailable, grpc::StatusCode::UNAVAILABLE, true},
    {StatusCode::kDeadlineExceeded, grpc::StatusCode::DEADLINE_EXCEEDED, true},
    {StatusCode::kCancelled, grpc::StatusCode::CANCELLED, true},
    {StatusCode::kExecutionFailed, grpc::StatusCode::INTERNAL, false},
    {StatusCode::kInternal, grpc::StatusCode::INTERNAL, false},
}};

const Mapping& Find(StatusCode code) {
  for (const auto& m : kTable) {
    if (m.engine == code) return m;
  }
  return kTable.back();  // an unknown code is an engine bug: INTERNAL, message hidden
}

constexpr std::array<std::pair<std::string_view, grpc::StatusCode>, 17> kNames = {{
    {"OK", grpc::StatusCode::OK},
    {"CANCELLED", grpc::StatusCode::CANCELLED},
    {"UNKNOWN", grpc::StatusCode::INTERNAL},  // never answer UNKNOWN
    {"INVALID_ARGUMENT", grpc::StatusCode::INVALID_ARGUMENT},
    {"DEADLINE_EXCEEDED", grpc::StatusCode::DEADLINE_EXCEEDED},
    {"NOT_FOUND", grpc::StatusCode::NOT_FOUND},
    {"ALREADY_EXISTS", grpc::StatusCode::ALREADY_EXISTS},
    {"PERMISSION_DENIED", grpc::StatusCode::PERMISSION_DENIED},
    {"RESOURCE_EXHAUSTED", grpc::StatusCode::RESOURCE_EXHAUSTED},
    {"FAILED_PRECONDITION", grpc::StatusCode::FAILED_PRECONDITION},
    {"ABORTED", grpc::StatusCode::ABORTED},
    {"OUT_OF_RANGE", grpc::StatusCode::OUT_OF_RANGE},
    {"UNIMPLEMENTED", grpc::StatusCode::UNIMPLEMENTED},
    {"INTERNAL", grpc::StatusCode::INTERNAL},
    {"UNAVAILABLE", grpc::StatusCode::UNAVAILABLE},
    {"DATA_LOSS", grpc::StatusCode::DATA_LOSS},
    {"UNAUTHENTICATED", grpc::StatusCode::UNAUTHENTICATED},
}};

}  // namespace

grpc::StatusCode GrpcCodeFor(StatusCode code) { return Find(code).grpc; }

grpc::Status ToGrpcStatus(const Status& status, std::string_view request_id) {
  if (status.ok()) return grpc::Status::OK;
  const Mapping& m = Find(status.code());
  if (m.expose_message) return grpc::Status(m.grpc, status.message());
  std::string id = request_id.empty() ? MakeRequestId() : std::string(request_id);
  LogServerError(std::string("request failed (") + StatusCodeName(status.code()) +
               "): " + status.message(),
           id);
  const char* what = status.code() == StatusCode::kExecutionFailed ? "the model failed to run"
                     : status.code() == StatusCode::kLoadFailed   ? "the model failed to load"
                                                                   : "internal error";
  return grpc::Status(m.grpc, std::string(what) + "; request id " + id);
}

grpc::StatusCode GrpcCodeFromName(std::string_view name) {
  for (const auto& [n, code] : kNames) {
    if (n == name) return code;
  }
  return grpc::StatusCode::INTERNAL;
}

std::string MakeRequestId() {
  static std::atomic<uint64_t> next{1};
  return "srv-" + std::to_string(next.fetch_add(1, std::memory_order_relaxed));
}

}  // namespace engine::server
