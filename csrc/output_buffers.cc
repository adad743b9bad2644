#include "output_buffers.h"

#include <algorithm>
#include <utility>

namespace engine {
namespace {

// Rounded up to a power of two, so that batches of nearby sizes can share buffers.
size_t CapacityFor(size_t bytes) {
  size_t capacity = 64;
  while (capacity < bytes) capacity <<= 1;
  return capacity;
}

}  // namespace

std::shared_ptr<OutputBufferPool> OutputBufferPool::Create() {
  std::shared_ptr<OutputBufferPool> pool(new OutputBufferPool());
  pool->kept_.reserve(kMaxKept);  // so that Return, called by deleters, never allocates
  return pool;
}

std::shared_ptr<uint8_t> OutputBufferPool::Take(size_t bytes) {
  bytes = std::max<size_t>(bytes, 1);
  if (bytes > kMaxPooledBytes) {
    return std::shared_ptr<uint8_t>(new uint8_t[bytes], std::default_delete<uint8_t[]>());
  }
  Buffer buffer;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    // The smallest kept buffer that fits, so that a model's small outputs do not take the
    // buffers its large ones need.
    auto best = kept_.end();
    for (auto it = kept_.begin(); it != kept_.end(); ++it) {
      if (it->capacity >= bytes && (best == kept_.end() || it->capacity < best->capacity)) {
        best = it;
      }
    }
    if (best != kept_.end()) {
      buffer = std::move(*best);
      *best = std::move(kept_.back());
      kept_.pop_back();
    }
  }
  if (!buffer.data) {
    buffer.capacity = CapacityFor(bytes);
    buffer.data.reset(new uint8_t[buffer.capacity]);
  }
  const size_t capacity = buffer.capacity;
  return std::shared_ptr<uint8_t>(buffer.data.release(),
                                  ReturnToPool{shared_from_this(), capacity});
}

void OutputBufferPool::ReturnToPool::operator()(uint8_t* data) const {
  Buffer buffer;
  buffer.data.reset(data);
  buffer.capacity = capacity;
  pool->Return(std::move(buffer));
}

void OutputBufferPool::Return(Buffer buffer) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (kept_.size() < kMaxKept) kept_.push_back(std::move(buffer));
  // Else `buffer` is freed here, outside the pool.
}

size_t OutputBufferPool::kept() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return kept_.size();
}

}  // namespace engine
