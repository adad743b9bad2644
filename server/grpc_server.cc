#include "grpc_server.h"

#include <absl/synchronization/mutex.h>
#include <google/protobuf/stubs/logging.h>
#include <grpc/grpc.h>
#include <grpc/support/log.h>
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <grpcpp/server_builder.h>

#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "log.h"

namespace engine::server {
namespace {

// gRPC's own log lines (rare: a failed bind, a broken connection) through log.h, in the
// process's format (JSON under --log-json). gRPC appends a status's debug details in braces
// ({file:"./src/core/...", errno:...}): its source paths, left out with them.
//
// While a server binds its port, the lines are held: a failed bind is reported once, by Start's
// own error with the system's reason, rather than also by gRPC's vaguer line before it.
struct HeldLine {
  std::string level, message;
};
std::mutex binding_mutex;  // one server of the process binds at a time: its lines are its own
std::mutex held_mutex;
std::vector<HeldLine>* held_lines = nullptr;  // GUARDED_BY(held_mutex); null: log at once

void LogGrpcMessage(gpr_log_func_args* args) {
  std::string_view message = args->message != nullptr ? args->message : "";
  if (const size_t details = message.find(" {"); details != std::string_view::npos) {
    message = message.substr(0, details);
  }
  const char* level = args->severity == GPR_LOG_SEVERITY_ERROR  ? "ERROR"
                      : args->severity == GPR_LOG_SEVERITY_INFO ? "INFO"
                                                                : "DEBUG";
  {
    std::lock_guard<std::mutex> lock(held_mutex);
    if (held_lines != nullptr) {
      held_lines->push_back({level, std::string(message)});
      return;
    }
  }
  LogLine(level, "grpc", message);
}

// Why a listening socket cannot be bound to host:port, from a bind of our own (gRPC does not
// say): the system's message, or "" when the bind now succeeds or the host does not resolve.
std::string BindFailure(const std::string& host, int port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* found = nullptr;
  const std::string bare = host.size() > 1 && host.front() == '[' && host.back() == ']'
                               ? host.substr(1, host.size() - 2)
                               : host;
  if (getaddrinfo(bare.c_str(), std::to_string(port).c_str(), &hints, &found) != 0) return "";
  std::string reason;
  for (addrinfo* a = found; a != nullptr && reason.empty(); a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
    if (fd < 0) continue;
    const int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));  // as gRPC binds
    if (bind(fd, a->ai_addr, a->ai_addrlen) != 0) reason = std::strerror(errno);
    close(fd);
  }
  freeaddrinfo(found);
  return reason;
}

// protobuf's own lines (a client's string field that is not UTF-8, one per such request)
// likewise, instead of its plain "[libprotobuf ERROR file:line]" on stderr, which broke
// --log-json's one JSON object per line. Its source file and line are left out.
void LogProtobufMessage(google::protobuf::LogLevel level, const char* /*filename*/,
                        int /*line*/, const std::string& message) {
  const char* name = level >= google::protobuf::LOGLEVEL_ERROR     ? "ERROR"
                     : level == google::protobuf::LOGLEVEL_WARNING ? "WARNING"
                                                                   : "INFO";
  LogLine(name, "protobuf", message);
}

// Server reflection for one builder. Loading libgrpc++_reflection registers its plugin for
// every server of the process; this option keeps exactly one copy, or none when reflection
// is off.
class ReflectionOption final : public grpc::ServerBuilderOption {
 public:
  explicit ReflectionOption(bool enabled) : enabled_(enabled) {}
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    static const std::string kName = "proto_server_reflection";
    plugins->erase(std::remove_if(plugins->begin(), plugins->end(),
                                  [](const auto& p) { return p->name() == kName; }),
                   plugins->end());
    if (enabled_) plugins->push_back(std::make_unique<grpc::reflection::ProtoServerReflectionPlugin>());
  }

 private:
  bool enabled_;
};

std::string Address(const std::string& host, int port) {
  const bool ipv6 = host.find(':') != std::string::npos && host.front() != '[';
  return (ipv6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::shared_ptr<grpc::ServerCredentials> Credentials(const ServerOptions& o) {
  if (o.tls_cert_pem.empty() && o.tls_key_pem.empty()) {
    if (!o.tls_client_ca_pem.empty()) {
      throw CoreError(StatusCode::kInvalidConfig,
                      "a client CA (mutual TLS) needs a server certificate and key");
    }
    return grpc::InsecureServerCredentials();
  }
  if (o.tls_cert_pem.empty() || o.tls_key_pem.empty()) {
    throw CoreError(StatusCode::kInvalidConfig, "TLS needs both a certificate and a key");
  }
  grpc::SslServerCredentialsOptions ssl(
      o.tls_client_ca_pem.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                  : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  ssl.pem_root_certs = o.tls_client_ca_pem;
  ssl.pem_key_cert_pairs.push_back({o.tls_key_pem, o.tls_cert_pem});
  return grpc::SslServerCredentials(ssl);
}

}  // namespace

GrpcServer::GrpcServer(ServerOptions options, std::unique_ptr<ControlPlane> control)
    : options_(std::move(options)), control_(std::move(control)), auth_(options_.auth_token) {
  if (options_.limits.max_message_bytes < 1024 ||
      options_.limits.max_message_bytes > (int64_t{1} << 31) - 1) {
    throw CoreError(StatusCode::kInvalidConfig,
                    "max_message_bytes must be in [1024, 2^31-1]; was " +
                        std::to_string(options_.limits.max_message_bytes));
  }
  service_ = std::make_unique<InferenceService>(&table_, &executor_, control_.get(), &auth_,
                                                options_.limits, options_.info);
  static std::once_flag log_once;
  std::call_once(log_once, [] {
    gpr_set_log_function(&LogGrpcMessage);
    google::protobuf::SetLogHandler(&LogProtobufMessage);
  });
}

GrpcServer::~GrpcServer() { Stop(); }

void GrpcServer::Start() {
  std::lock_guard<std::mutex> lock(lifecycle_mutex_);
  if (server_ || stopped_) throw CoreError(StatusCode::kInvalidConfig, "the server was started before");
  // Debian builds abseil without NDEBUG, which leaves its lock-order deadlock detector on:
  // every grpc mutex operation then updates a process-wide lock graph (about 3% of the
  // server's CPU under load, in GraphCycles). Our own locks are std::mutex, untouched.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::ServerBuilder builder;
  builder.SetOption(std::make_unique<ReflectionOption>(options_.reflection && !auth_.enabled()));
  const std::string address = Address(options_.host, options_.port);
  builder.AddListeningPort(address, Credentials(options_), &port_);
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);  // a taken port must fail
  const int max_bytes = static_cast<int>(options_.limits.max_message_bytes);
  builder.SetMaxReceiveMessageSize(max_bytes);
  builder.SetMaxSendMessageSize(max_bytes);
  builder.RegisterService(service_.get());
  builder.RegisterCallbackGenericService(&unsupported_);
  std::vector<HeldLine> lines;
  {
    std::lock_guard<std::mutex> bind_lock(binding_mutex);
    {
      std::lock_guard<std::mutex> held_lock(held_mutex);
      held_lines = &lines;
    }
    server_ = builder.BuildAndStart();
    std::lock_guard<std::mutex> held_lock(held_mutex);
    held_lines = nullptr;
  }
  if (!server_ || port_ == 0) {
    if (server_) server_->Shutdown();
    server_.reset();
    port_ = 0;
    const std::string reason = BindFailure(options_.host, options_.port);
    throw CoreError(StatusCode::kUnavailable,
                    "cannot listen on " + address + ": " +
                        (reason.empty()
                             ? "the port is in use or the address is not available on this host"
                             : reason));
  }
  for (const HeldLine& line : lines) LogLine(line.level, "grpc", line.message);
  // Health knows the overall server ("") and the inference service by name; both start
  // NOT_SERVING and follow SetReady / Drain together (SetServingStatus(bool) sets all).
  auto* health = server_->GetHealthCheckService();
  health->SetServingStatus(Svc::service_full_name(), false);
  health->SetServingStatus(false);
}

void GrpcServer::SetReady(bool ready) {
  std::lock_guard<std::mutex> lock(lifecycle_mutex_);
  if (stopped_) return;
  table_.SetServerReady(ready);
  if (server_) server_->GetHealthCheckService()->SetServingStatus(ready);
}

void GrpcServer::WaitForClientsToStop(std::chrono::system_clock::time_point deadline) {
  const auto give_up =
      std::min(deadline, std::chrono::system_clock::now() + kMaxClientQuietWait);
  uint64_t seen = service_->InferenceCallsStarted();
  auto quiet_since = std::chrono::system_clock::now();
  while (true) {
    const auto now = std::chrono::system_clock::now();
    if (now - quiet_since >= kClientQuiet || now >= give_up || cut_short_.load()) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    const uint64_t calls = service_->InferenceCallsStarted();
    if (calls != seen) {
      seen = calls;
      quiet_since = std::chrono::system_clock::now();
    }
  }
}

void GrpcServer::Drain(int64_t grace_ms) {
  std::lock_guard<std::mutex> lock(lifecycle_mutex_);
  if (stopped_) return;
  stopped_ = true;
  const auto deadline = std::chrono::system_clock::now() + std::chrono::milliseconds(grace_ms);
  table_.BeginDrain();  // new inferences: UNAVAILABLE; ServerReady: false
  if (service_) service_->BeginDrain();  // open streams finish once their requests are answered
  if (server_) server_->GetHealthCheckService()->SetServingStatus(false);
  // Queued and running requests finish within the grace period, all models at once; what is
  // still queued at its end fails as unavailable (without a grace period, at once), and the
  // batches running then finish.
  const auto served_models = table_.List();
  if (grace_ms > 0) {
    for (const auto& served : served_models) served.model->BeginClose();
    const auto steady_deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(grace_ms);
    for (const auto& served : served_models) served.model->WaitDrained(steady_deadline);
  }
  for (const auto& served : served_models) served.model->Close(/*drain=*/false);
  executor_.Stop();
  if (service_) WaitForClientsToStop(deadline);
  if (server_) {
    // The answers already given (the UNAVAILABLE of what was still queued) get a moment to
    // reach their clients even past the grace period or when cut short: at its deadline gRPC
    // cancels every call not yet written out, and the client sees "Cancelling all calls"
    // instead of the reason. Shutdown returns as soon as no call is left.
    const auto flushed_by = std::chrono::system_clock::now() + kFlushAnswers;
    server_->Shutdown(cut_short_.load() ? flushed_by : std::max(deadline, flushed_by));
    server_->Wait();
  }
}

void GrpcServer::CutDrainShort() {
  cut_short_.store(true);
  // Close(false) also cuts short a model's drain under way: its WaitDrained in Drain returns
  // once the runs under way finish.
  for (const auto& served : table_.List()) served.model->Close(/*drain=*/false);
}

}  // namespace engine::server
