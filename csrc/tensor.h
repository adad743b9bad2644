// Host tensors: the one way tensor data moves through the core.
//
// A HostTensor either borrows memory (numpy buffer, a gRPC request's raw contents, a slice of a
// batch output) or shares ownership of it through `owner`. Numeric data is dense, row-major,
// native-endian; strings live in `strings`, one std::string per element, row-major.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "element_type.h"

namespace engine {

struct HostTensor {
  ElementType type = ElementType::kUndefined;
  std::vector<int64_t> shape;
  // Numeric types: `byte_size` bytes at `data`. Unused (nullptr, 0) for kString.
  const void* data = nullptr;
  size_t byte_size = 0;
  // kString only: one entry per element.
  std::vector<std::string> strings;
  // Keeps `data` alive; empty when the tensor borrows memory its creator keeps alive.
  std::shared_ptr<const void> owner;

  // Product of `shape`; 1 for a scalar. Caller must have validated the shape (no negatives).
  int64_t element_count() const;
  // Rows along dim 0 (1 for a scalar).
  int64_t rows() const { return shape.empty() ? 1 : shape[0]; }
};

// Element count of `shape`, or -1 if a dim is negative or the product exceeds `limit`.
int64_t CheckedElementCount(const std::vector<int64_t>& shape, int64_t limit);

// Makes a HostTensor that owns a fresh zero-filled numeric buffer of `shape`.
HostTensor AllocateHostTensor(ElementType type, const std::vector<int64_t>& shape);

// Mutable pointer to a tensor made by AllocateHostTensor.
inline void* MutableData(HostTensor& t) { return const_cast<void*>(t.data); }

std::string ShapeToString(const std::vector<int64_t>& shape);

}  // namespace engine
