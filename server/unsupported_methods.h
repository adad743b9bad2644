// Answers every RPC the server does not serve (Triton's shared-memory, trace and log-settings
// RPCs, or a mistyped method) with UNIMPLEMENTED and a message that says what to do instead:
// grpc++'s own answer for an unknown method is UNIMPLEMENTED with an empty message, which left
// a tritonclient user to guess. Registered as the server's generic service, so it sees only
// the methods no other service has.
#pragma once

#include <grpcpp/generic/async_generic_service.h>

#include <string>
#include <string_view>

namespace engine::server {

class UnsupportedMethods final : public grpc::CallbackGenericService {
 public:
  grpc::ServerGenericBidiReactor* CreateReactor(grpc::GenericCallbackServerContext* ctx) override;

  // The message for `method` (a full path, "/package.Service/Method"), as sent to the client.
  static std::string MessageFor(std::string_view method);
};

}  // namespace engine::server
