#include "tensor.h"

#include <cstdlib>
#include <cstring>
#include <new>

namespace engine {

int64_t HostTensor::element_count() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

int64_t CheckedElementCount(const std::vector<int64_t>& shape, int64_t limit) {
  int64_t n = 1;
  bool empty = false;
  for (int64_t d : shape) {
    if (d < 0) return -1;
    if (d == 0) {
      empty = true;
      continue;
    }
    if (n > limit / d) return -1;
    n *= d;
  }
  return empty ? 0 : n;
}

HostTensor AllocateHostTensor(ElementType type, const std::vector<int64_t>& shape) {
  HostTensor t;
  t.type = type;
  t.shape = shape;
  const int64_t count = t.element_count();
  if (type == ElementType::kString) {
    t.strings.resize(static_cast<size_t>(count));
    return t;
  }
  t.byte_size = static_cast<size_t>(count) * ElementSize(type);
  // At least one byte so `data` is never null (ORT refuses a null buffer even when empty).
  std::shared_ptr<uint8_t> buffer(new uint8_t[t.byte_size > 0 ? t.byte_size : 1](),
                                  std::default_delete<uint8_t[]>());
  t.data = buffer.get();
  t.owner = std::move(buffer);
  return t;
}

std::string ShapeToString(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(shape[i]);
  }
  return s + "]";
}

}  // namespace engine
