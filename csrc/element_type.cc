#include "element_type.h"

namespace engine {

size_t ElementSize(ElementType type) {
  switch (type) {
    case ElementType::kBool:
    case ElementType::kUInt8:
    case ElementType::kInt8: return 1;
    case ElementType::kUInt16:
    case ElementType::kInt16:
    case ElementType::kFloat16: return 2;
    case ElementType::kUInt32:
    case ElementType::kInt32:
    case ElementType::kFloat32: return 4;
    case ElementType::kUInt64:
    case ElementType::kInt64:
    case ElementType::kFloat64: return 8;
    case ElementType::kString:
    case ElementType::kUndefined: return 0;
  }
  return 0;
}

const char* ElementTypeName(ElementType type) {
  switch (type) {
    case ElementType::kFloat32: return "float32";
    case ElementType::kFloat64: return "float64";
    case ElementType::kFloat16: return "float16";
    case ElementType::kInt8: return "int8";
    case ElementType::kInt16: return "int16";
    case ElementType::kInt32: return "int32";
    case ElementType::kInt64: return "int64";
    case ElementType::kUInt8: return "uint8";
    case ElementType::kUInt16: return "uint16";
    case ElementType::kUInt32: return "uint32";
    case ElementType::kUInt64: return "uint64";
    case ElementType::kBool: return "bool";
    case ElementType::kString: return "string";
    case ElementType::kUndefined: return "undefined";
  }
  return "undefined";
}

bool IsSupported(ElementType type) {
  return type != ElementType::kUndefined && ElementTypeFromOnnx(static_cast<int>(type)) == type;
}

ElementType ElementTypeFromOnnx(int onnx_type) {
  if (onnx_type >= 1 && onnx_type <= 13) return static_cast<ElementType>(onnx_type);
  return ElementType::kUndefined;
}

}  // namespace engine
