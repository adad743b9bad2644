#include "serving_table.h"

#include <utility>

#include "names.h"

namespace engine::server {
namespace {

Status CheckName(std::string_view name) {
  std::string problem = ModelNameProblem(name);
  if (problem.empty()) return Status::Ok();
  return Status(StatusCode::kInvalidInput,
                "invalid model name " + QuoteForMessage(name) + ": " + problem);
}

void ThrowIfError(const Status& s) {
  if (!s.ok()) throw CoreError(s);
}

std::string Ref(std::string_view name, int64_t version) {
  return "model '" + std::string(name) + "' version " + std::to_string(version);
}

}  // namespace

std::shared_ptr<Model> ServingTable::Add(const std::string& name, int64_t version,
                                         std::shared_ptr<Model> model, bool ready) {
  ThrowIfError(CheckName(name));
  if (version < 1 || version > kMaxModelVersion) {
    throw CoreError(StatusCode::kInvalidInput,
                    "model version must be in [1, 2147483647]; was " + std::to_string(version));
  }
  if (!model) throw CoreError(StatusCode::kInvalidInput, "model must not be None");
  std::unique_lock lock(mutex_);
  ServedVersion& slot = models_[name].versions[version];
  std::shared_ptr<Model> replaced = std::move(slot.model);
  slot = ServedVersion{name, version, std::move(model), ready};
  return replaced;
}

std::shared_ptr<Model> ServingTable::Remove(const std::string& name, int64_t version) {
  std::unique_lock lock(mutex_);
  auto it = models_.find(name);
  if (it == models_.end()) return nullptr;
  auto v = it->second.versions.find(version);
  if (v == it->second.versions.end()) return nullptr;
  std::shared_ptr<Model> removed = std::move(v->second.model);
  it->second.versions.erase(v);
  if (it->second.default_version == version) it->second.default_version = 0;
  if (it->second.versions.empty()) models_.erase(it);
  return removed;
}

void ServingTable::SetDefault(const std::string& name, int64_t version) {
  std::unique_lock lock(mutex_);
  auto it = models_.find(name);
  if (it == models_.end() || !it->second.versions.count(version)) {
    throw CoreError(StatusCode::kNotFound, Ref(name, version) + " is not served");
  }
  it->second.default_version = version;
}

void ServingTable::SetReady(const std::string& name, int64_t version, bool ready) {
  std::unique_lock lock(mutex_);
  auto it = models_.find(name);
  if (it != models_.end()) {
    auto v = it->second.versions.find(version);
    if (v != it->second.versions.end()) {
      v->second.ready = ready;
      return;
    }
  }
  throw CoreError(StatusCode::kNotFound, Ref(name, version) + " is not served");
}

void ServingTable::SetServerReady(bool ready) {
  std::unique_lock lock(mutex_);
  server_ready_ = ready;
}

void ServingTable::BeginDrain() {
  std::unique_lock lock(mutex_);
  draining_ = true;
  server_ready_ = false;
}

bool ServingTable::server_ready() const {
  std::shared_lock lock(mutex_);
  return server_ready_ && !draining_;
}

bool ServingTable::draining() const {
  std::shared_lock lock(mutex_);
  return draining_;
}

const ServingTable::Entry* ServingTable::FindEntry(std::string_view name, Status* status) const {
  *status = CheckName(name);
  if (!status->ok()) return nullptr;
  auto it = models_.find(name);
  if (it == models_.end()) {
    *status = Status(StatusCode::kNotFound, "unknown model '" + std::string(name) + "'");
    return nullptr;
  }
  return &it->second;
}

Status ServingTable::Find(std::string_view name, std::string_view version,
                          ServedVersion* out) const {
  Status status = CheckName(name);
  if (!status.ok()) return status;
  int64_t number = 0;
  if (!ParseModelVersion(version, &number)) {
    return Status(StatusCode::kInvalidInput,
                  "invalid model version " + QuoteForMessage(version) +
                      ": use a positive integer without leading zeros, or empty for the default");
  }
  std::shared_lock lock(mutex_);
  const Entry* entry = FindEntry(name, &status);
  if (!entry) return status;
  if (number == 0) number = entry->default_version;
  if (number == 0) {
    // No explicit default: the highest ready version, else the highest.
    for (auto it = entry->versions.rbegin(); it != entry->versions.rend(); ++it) {
      if (it->second.ready) {
        *out = it->second;
        return Status::Ok();
      }
    }
    *out = entry->versions.rbegin()->second;
    return Status::Ok();
  }
  auto v = entry->versions.find(number);
  if (v == entry->versions.end()) {
    return Status(StatusCode::kNotFound, "unknown version " + std::to_string(number) +
                                             " of model '" + std::string(name) + "'");
  }
  *out = v->second;
  return Status::Ok();
}

Status ServingTable::FindForInference(std::string_view name, std::string_view version,
                                      ServedVersion* out) const {
  if (draining()) {
    return Status(StatusCode::kUnavailable, "the server is shutting down; retry on another replica");
  }
  Status s = Find(name, version, out);
  if (!s.ok()) return s;
  if (!out->ready) {
    return Status(StatusCode::kUnavailable, Ref(name, out->version) + " is not ready");
  }
  return Status::Ok();
}

Status ServingTable::Versions(std::string_view name, std::vector<int64_t>* out) const {
  Status status;
  std::shared_lock lock(mutex_);
  const Entry* entry = FindEntry(name, &status);
  if (!entry) return status;
  out->clear();
  for (const auto& [v, _] : entry->versions) out->push_back(v);
  return Status::Ok();
}

std::vector<ServedVersion> ServingTable::List() const {
  std::shared_lock lock(mutex_);
  std::vector<ServedVersion> all;
  for (const auto& [_, entry] : models_) {
    for (const auto& [v, served] : entry.versions) all.push_back(served);
  }
  return all;
}

}  // namespace engine::server
