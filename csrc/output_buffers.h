// Buffers that batched runs' outputs are written into, reused from batch to batch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

namespace engine {

// Why: a batch's outputs outlive its run. The completion thread splits them into views that
// the callers keep, so ORT cannot reuse them, and outputs that ORT allocated cost the worker
// about 2 us of each 57 us run of the benchmark's MLP (batcher_bench, 30-row batches), on
// the one thread that bounds the batcher's throughput. A buffer taken here
// comes back when its last view is dropped, on whatever thread, and a later batch reuses it.
//
// Buffers of up to kMaxPooledBytes are kept, at most kMaxKept of them; larger ones are plain
// allocations, freed when dropped (a run that writes that much is not bounded by this).
// Thread-safe. Buffers keep the pool alive, so they may outlive the model that took them.
class OutputBufferPool : public std::enable_shared_from_this<OutputBufferPool> {
 public:
  static std::shared_ptr<OutputBufferPool> Create();

  // A buffer of at least max(bytes, 1) bytes (never null: ORT refuses a null buffer), shared
  // by its owners; its contents are undefined.
  std::shared_ptr<uint8_t> Take(size_t bytes);

  // Buffers kept for reuse now.
  size_t kept() const;

  static constexpr size_t kMaxKept = 16;
  static constexpr size_t kMaxPooledBytes = size_t{1} << 20;

 private:
  OutputBufferPool() = default;
  struct Buffer {
    std::unique_ptr<uint8_t[]> data;
    size_t capacity = 0;
  };
  // The deleter of a taken buffer.
  struct ReturnToPool {
    std::shared_ptr<OutputBufferPool> pool;
    size_t capacity;
    void operator()(uint8_t* data) const;
  };
  void Return(Buffer buffer);

  mutable std::mutex mutex_;
  std::vector<Buffer> kept_;  // guarded by mutex_
};

}  // namespace engine
