// The serving table: which model versions the server answers for, and whether it is ready.
//
// Python's control plane sets it (Add/Remove/SetDefault/SetReady through engine._core.Server);
// RPC handlers only read it. Thread-safe: readers take a shared lock and copy one shared_ptr,
// so a version removed while a request runs stays alive until that request completes.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "model.h"
#include "status.h"

namespace engine::server {

struct ServedVersion {
  std::string name;
  int64_t version = 0;
  std::shared_ptr<Model> model;
  bool ready = false;
};

class ServingTable {
 public:
  // Adds or replaces `name`:`version`. Throws CoreError(kInvalidInput) for a name outside the
  // grammar or a version outside [1, 2^31-1]. Returns the replaced model, if any; the caller
  // closes it (outside any lock of this table).
  std::shared_ptr<Model> Add(const std::string& name, int64_t version, std::shared_ptr<Model> model,
                             bool ready);
  // Removes a version and returns its model (nullptr when absent). Clears an explicit default
  // that pointed at it.
  std::shared_ptr<Model> Remove(const std::string& name, int64_t version);
  // The version an empty version string means; without one set, the highest ready version.
  // Throws CoreError(kNotFound) when that version is not in the table.
  void SetDefault(const std::string& name, int64_t version);
  // Throws CoreError(kNotFound) when the version is not in the table.
  void SetReady(const std::string& name, int64_t version, bool ready);

  // Server-wide readiness (models loaded and warmed) and draining (shutting down).
  void SetServerReady(bool ready);
  void BeginDrain();
  bool server_ready() const;
  bool draining() const;

  // Finds the version an inference may run on. `version` "" means the default. Errors:
  // kInvalidInput (bad name or version text: checked before any lookup), kNotFound (no such
  // model or version), kUnavailable (not ready, or the server is draining; retry later).
  Status FindForInference(std::string_view name, std::string_view version,
                          ServedVersion* out) const;
  // As FindForInference without the readiness and draining checks (metadata, readiness).
  Status Find(std::string_view name, std::string_view version, ServedVersion* out) const;
  // Versions of `name`, ascending; kInvalidInput / kNotFound as above.
  Status Versions(std::string_view name, std::vector<int64_t>* out) const;
  // Every version of every model, by name then version.
  std::vector<ServedVersion> List() const;

 private:
  struct Entry {
    std::map<int64_t, ServedVersion> versions;
    int64_t default_version = 0;  // 0: highest ready version, else highest
  };
  const Entry* FindEntry(std::string_view name, Status* status) const;  // REQUIRES mutex_

  mutable std::shared_mutex mutex_;
  std::map<std::string, Entry, std::less<>> models_;  // GUARDED_BY(mutex_)
  bool server_ready_ = false;                          // GUARDED_BY(mutex_)
  bool draining_ = false;                              // GUARDED_BY(mutex_)
};

}  // namespace engine::server
