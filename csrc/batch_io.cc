#include "batch_io.h"

#include <algorithm>
#include <cstring>

namespace engine {

HostTensor Gather(const std::vector<const HostTensor*>& parts, std::vector<uint8_t>* scratch) {
  if (parts.size() == 1) return *parts.front();
  const HostTensor& first = *parts.front();
  std::vector<int64_t> shape = first.shape;
  int64_t rows = 0;
  for (const HostTensor* p : parts) rows += p->rows();
  shape[0] = rows;
  if (first.type == ElementType::kString) {
    HostTensor batch = AllocateHostTensor(first.type, shape);
    size_t at = 0;
    for (const HostTensor* p : parts) {
      for (const auto& s : p->strings) batch.strings[at++] = s;
    }
    return batch;
  }
  HostTensor batch;
  uint8_t* out = nullptr;
  if (scratch != nullptr) {
    size_t bytes = 0;
    for (const HostTensor* p : parts) bytes += p->byte_size;
    // At least one byte so `data` is never null (ORT refuses a null buffer even when empty).
    if (scratch->size() < std::max<size_t>(bytes, 1)) scratch->resize(std::max<size_t>(bytes, 1));
    batch.type = first.type;
    batch.shape = std::move(shape);
    batch.byte_size = bytes;
    batch.data = scratch->data();
    out = scratch->data();
  } else {
    batch = AllocateHostTensor(first.type, shape);
    out = static_cast<uint8_t*>(MutableData(batch));
  }
  for (const HostTensor* p : parts) {
    if (p->byte_size > 0) std::memcpy(out, p->data, p->byte_size);
    out += p->byte_size;
  }
  return batch;
}

bool SplitsIntoRows(const HostTensor& whole, int64_t rows) {
  return !whole.shape.empty() && whole.shape[0] == rows;
}

HostTensor SliceRows(const HostTensor& whole, int64_t first_row, int64_t rows) {
  const int64_t total = whole.shape[0];
  const int64_t row_elements = total > 0 ? whole.element_count() / total : 0;
  HostTensor piece;
  piece.type = whole.type;
  piece.shape = whole.shape;
  piece.shape[0] = rows;
  if (whole.type == ElementType::kString) {
    auto begin = whole.strings.begin() + first_row * row_elements;
    piece.strings.assign(begin, begin + rows * row_elements);
  } else {
    const size_t row_bytes = static_cast<size_t>(row_elements) * ElementSize(whole.type);
    const auto* begin =
        static_cast<const uint8_t*>(whole.data) + static_cast<size_t>(first_row) * row_bytes;
    piece.byte_size = static_cast<size_t>(rows) * row_bytes;
    if (whole.byte_size >= kCopySlicesOfBytes && 2 * piece.byte_size < whole.byte_size) {
      // A view would keep the whole batch buffer alive for as long as the caller keeps this
      // result; a small part of a large buffer is copied instead.
      std::shared_ptr<uint8_t[]> copy(new uint8_t[piece.byte_size]);
      std::memcpy(copy.get(), begin, piece.byte_size);
      piece.data = copy.get();
      piece.owner = std::move(copy);
    } else {
      piece.data = begin;
      piece.owner = whole.owner;
    }
  }
  return piece;
}

}  // namespace engine
