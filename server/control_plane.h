// The server's view of the Python control plane: the rare RPCs that change or describe what
// is served (repository index, load, unload, model config). Implemented in bind_server.cc by
// calling Python; the C++ data plane never goes through here.
#pragma once

#include <grpcpp/support/status.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace engine::server {

class ControlPlane {
 public:
  struct IndexEntry {
    std::string name;
    std::string version;
    std::string state;  // READY, UNAVAILABLE, LOADING, UNLOADING
    std::string reason;
  };

  virtual ~ControlPlane() = default;
  // Each call may block (a load builds ORT sessions). Called only from the ControlExecutor's
  // thread, one call at a time; never from a gRPC thread. Names were checked against the
  // grammar before the call. The returned status' message is shown to the client as is.
  virtual grpc::Status RepositoryIndex(bool ready_only, std::vector<IndexEntry>* out) = 0;
  virtual grpc::Status LoadModel(const std::string& name,
                                 const std::map<std::string, std::string>& parameters) = 0;
  virtual grpc::Status UnloadModel(const std::string& name) = 0;
  // The ModelConfig message of a served version in protobuf's JSON form.
  virtual grpc::Status ModelConfigJson(const std::string& name, int64_t version,
                                       std::string* json) = 0;
};

}  // namespace engine::server
