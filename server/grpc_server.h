// The gRPC server process-side object: listening port, TLS, the inference service, health,
// reflection, and the drain sequence. Python drives it through engine._core.Server.
#pragma once

#include <grpcpp/server.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "auth.h"
#include "control_executor.h"
#include "control_plane.h"
#include "inference_service.h"
#include "server_limits.h"
#include "serving_table.h"
#include "unsupported_methods.h"

namespace engine::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8001;  // 0: pick a free port (see GrpcServer::port)
  // PEM contents (not paths). cert + key turn TLS on; client_ca also requires and verifies
  // client certificates (mutual TLS).
  std::string tls_cert_pem;
  std::string tls_key_pem;
  std::string tls_client_ca_pem;
  std::string auth_token;  // empty: no authentication
  ServerLimits limits;
  ServiceInfo info;
  // Server reflection. Reflection cannot check the bearer token (it is grpc++'s own service),
  // so it is only offered when no token is set.
  bool reflection = true;
};

class GrpcServer {
 public:
  // Does not bind yet. `control` may be null (the control RPCs then answer UNAVAILABLE).
  GrpcServer(ServerOptions options, std::unique_ptr<ControlPlane> control);
  // Stops at once if still running (see Stop).
  ~GrpcServer();
  GrpcServer(const GrpcServer&) = delete;
  GrpcServer& operator=(const GrpcServer&) = delete;

  // Binds and starts serving; health answers NOT_SERVING until SetReady(true). Throws
  // CoreError(kUnavailable) when the address cannot be bound (port taken: no silent double
  // bind, SO_REUSEPORT is off) and kInvalidConfig for unusable TLS options.
  void Start();
  // The bound port (the chosen one when options.port was 0); 0 before Start.
  int port() const { return port_; }

  ServingTable& table() { return table_; }

  // Server readiness: ServerReady and health (SERVING / NOT_SERVING).
  void SetReady(bool ready);

  // Graceful shutdown, blocking: health NOT_SERVING and new inferences refused (UNAVAILABLE);
  // every served model drains (queued requests run and are answered); then, until clients
  // stop sending here (WaitForClientsToStop), new calls are still answered UNAVAILABLE; then
  // the transport shuts down, cancelling whatever is still open after `grace_ms` in total.
  // Idempotent.
  void Drain(int64_t grace_ms);
  // Immediate shutdown: open calls are cancelled. Idempotent. Blocks until gRPC is done.
  void Stop() { Drain(0); }
  // Cuts a Drain under way short (an operator's second SIGTERM or Ctrl-C): what is still
  // queued fails as UNAVAILABLE now, the runs under way finish, and the transport shuts down
  // without waiting out the grace period or for clients to stop sending. Safe from any thread
  // while Drain blocks another; blocks until the served models' runs under way finish.
  void CutDrainShort();

 private:
  // A call that arrives once the transport shuts down is cancelled by grpc-core, unanswered
  // (grpc/grpc#41785): its client sees CANCELLED, which retry policies do not retry, where
  // the UNAVAILABLE answered until then is retried elsewhere. Clients stop sending once a
  // load balancer has taken this server out (health NOT_SERVING), so the transport waits for
  // kClientQuiet without a new inference call, for at most kMaxClientQuietWait and never
  // past `deadline`: clients that keep sending regardless delay the exit by that much only.
  void WaitForClientsToStop(std::chrono::system_clock::time_point deadline);
  static constexpr std::chrono::milliseconds kClientQuiet{100};
  static constexpr std::chrono::milliseconds kMaxClientQuietWait{2000};
  // The least time the shutdown leaves for answers given to be written out (Drain).
  static constexpr std::chrono::milliseconds kFlushAnswers{1000};

  ServerOptions options_;
  std::unique_ptr<ControlPlane> control_;
  ServingTable table_;
  BearerAuth auth_;
  ControlExecutor executor_;
  std::unique_ptr<InferenceService> service_;
  UnsupportedMethods unsupported_;  // every method no service serves
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
  std::mutex lifecycle_mutex_;  // serialises Start / SetReady / Drain
  bool stopped_ = false;        // GUARDED_BY(lifecycle_mutex_)
  std::atomic<bool> cut_short_{false};  // CutDrainShort was called
};

}  // namespace engine::server
