#include "exact_convert.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "status.h"

namespace engine {
namespace {

// Element i of a numeric tensor, exactly as stored (the buffer may be unaligned: a gRPC
// request's raw contents).
template <typename T>
T Load(const void* data, int64_t i) {
  T v;
  std::memcpy(&v, static_cast<const uint8_t*>(data) + static_cast<size_t>(i) * sizeof(T),
              sizeof(T));
  return v;
}

// Readers of element i, widened without loss to the type its rule is stated on: floats to
// double, signed integers to int64_t, unsigned ones to uint64_t (never an integer to double:
// beyond 2^53 that would round it before the check).
template <typename Stored, typename Wide>
struct Widened {
  static Wide At(const void* data, int64_t i) { return static_cast<Wide>(Load<Stored>(data, i)); }
};
struct HalfWidened {
  static double At(const void* data, int64_t i) { return HalfToDouble(Load<uint16_t>(data, i)); }
};

// A float as Python's repr writes it (the in-process path's messages print the value so):
// the shortest digits that read back the same, fixed from 1e-4 up to 1e16 (with ".0" when
// whole), scientific beyond.
std::string FloatText(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
  char buffer[64];
  auto end = std::to_chars(buffer, buffer + sizeof(buffer), v, std::chars_format::scientific).ptr;
  const std::string scientific(buffer, end);
  const int exponent = std::atoi(scientific.c_str() + scientific.find('e') + 1);
  if (exponent < -4 || exponent >= 16) return scientific;
  end = std::to_chars(buffer, buffer + sizeof(buffer), v, std::chars_format::fixed).ptr;
  std::string fixed(buffer, end);
  if (fixed.find('.') == std::string::npos) fixed += ".0";
  return fixed;
}

const char* Reason(double value, ElementType to) { return InexactReason(value, to); }
const char* Reason(int64_t value, ElementType to) { return InexactIntReason(value, to); }
const char* Reason(uint64_t value, ElementType to) { return InexactUIntReason(value, to); }

// A value as the caller sent it: integers exactly, floats as Python writes them.
std::string ValueText(double value) { return FloatText(value); }
std::string ValueText(int64_t value) { return std::to_string(value); }
std::string ValueText(uint64_t value) { return std::to_string(value); }

// True when a float with a `digits`-bit significand holds `magnitude` exactly: its bits from
// the highest set one to the lowest fit in `digits`. Both float32 and float64 reach beyond
// 2^64, so range is never the question.
bool FloatHolds(uint64_t magnitude, int digits) {
  if (magnitude >> digits == 0) return true;
  while ((magnitude & 1) == 0) magnitude >>= 1;  // nonzero here, so this ends
  return magnitude >> digits == 0;
}

const char* IntegerIntoFloat(uint64_t magnitude, ElementType to) {
  switch (to) {
    case ElementType::kFloat32:
      return FloatHolds(magnitude, std::numeric_limits<float>::digits) ? nullptr
                                                                       : "float32 would round it";
    case ElementType::kFloat64:
      return FloatHolds(magnitude, std::numeric_limits<double>::digits) ? nullptr
                                                                        : "float64 would round it";
    default:
      return "not a dtype of a transform column";
  }
}

template <typename Reader, typename To>
void ConvertInto(const std::string& column_name, const HostTensor& column, ElementType to,
                 To* out) {
  const int64_t count = column.element_count();
  const int64_t per_row = column.shape.empty() || column.shape[0] == 0
                              ? 1
                              : std::max<int64_t>(1, count / column.shape[0]);
  for (int64_t i = 0; i < count; ++i) {
    const auto value = Reader::At(column.data, i);
    if (const char* why = Reason(value, to)) {
      throw CoreError(StatusCode::kInvalidInput,
                      "column '" + column_name + "': " + ElementTypeName(column.type) +
                          " value " + ValueText(value) + " does not convert exactly to " +
                          ElementTypeName(to) + ", the transform spec's dtype for this column " +
                          "(row " + std::to_string(i / per_row) + ": " + why +
                          "); cast the column first");
    }
    out[i] = static_cast<To>(value);  // exact (or NaN/inf into a float): Reason said so
  }
}

template <typename To>
void ConvertColumn(const std::string& column_name, const HostTensor& column, ElementType to,
                   To* out) {
  const auto& n = column_name;
  switch (column.type) {
    case ElementType::kFloat16: return ConvertInto<HalfWidened>(n, column, to, out);
    case ElementType::kFloat32: return ConvertInto<Widened<float, double>>(n, column, to, out);
    case ElementType::kFloat64: return ConvertInto<Widened<double, double>>(n, column, to, out);
    case ElementType::kInt8: return ConvertInto<Widened<int8_t, int64_t>>(n, column, to, out);
    case ElementType::kInt16: return ConvertInto<Widened<int16_t, int64_t>>(n, column, to, out);
    case ElementType::kInt32: return ConvertInto<Widened<int32_t, int64_t>>(n, column, to, out);
    case ElementType::kInt64: return ConvertInto<Widened<int64_t, int64_t>>(n, column, to, out);
    case ElementType::kUInt8: return ConvertInto<Widened<uint8_t, uint64_t>>(n, column, to, out);
    case ElementType::kUInt16: return ConvertInto<Widened<uint16_t, uint64_t>>(n, column, to, out);
    case ElementType::kUInt32: return ConvertInto<Widened<uint32_t, uint64_t>>(n, column, to, out);
    case ElementType::kUInt64: return ConvertInto<Widened<uint64_t, uint64_t>>(n, column, to, out);
    default:  // ConvertExactly checked IsConvertibleNumeric
      throw CoreError(StatusCode::kInternal, "column '" + column_name +
                                                 "': no exact conversion from " +
                                                 ElementTypeName(column.type));
  }
}

}  // namespace

bool IsConvertibleNumeric(ElementType type) {
  switch (type) {
    case ElementType::kFloat16:
    case ElementType::kFloat32:
    case ElementType::kFloat64:
    case ElementType::kInt8:
    case ElementType::kInt16:
    case ElementType::kInt32:
    case ElementType::kInt64:
    case ElementType::kUInt8:
    case ElementType::kUInt16:
    case ElementType::kUInt32:
    case ElementType::kUInt64: return true;
    default: return false;
  }
}

const char* InexactReason(double value, ElementType to) {
  switch (to) {
    case ElementType::kFloat64:
      return nullptr;  // the double itself
    case ElementType::kFloat32:
      if (std::isnan(value) || std::isinf(value)) return nullptr;
      // Checked before the cast: a finite double beyond float's range has no float value.
      if (std::fabs(value) > std::numeric_limits<float>::max()) return "outside float32's range";
      if (static_cast<double>(static_cast<float>(value)) != value) {
        return "float32 would round it";
      }
      return nullptr;
    case ElementType::kInt64:
      if (std::isnan(value)) return "NaN has no int64 value";
      if (std::isinf(value)) return "infinity has no int64 value";
      if (std::trunc(value) != value) return "not a whole number";
      // [-2^63, 2^63): both bounds are exact doubles; casting outside them is undefined.
      if (value < -9223372036854775808.0 || value >= 9223372036854775808.0) {
        return "outside int64's range";
      }
      return nullptr;
    default:
      return "not a dtype of a transform column";
  }
}

const char* InexactIntReason(int64_t value, ElementType to) {
  if (to == ElementType::kInt64) return nullptr;
  // |INT64_MIN| is 2^63: negate in uint64_t, where it is defined.
  const uint64_t magnitude =
      value < 0 ? uint64_t{0} - static_cast<uint64_t>(value) : static_cast<uint64_t>(value);
  return IntegerIntoFloat(magnitude, to);
}

const char* InexactUIntReason(uint64_t value, ElementType to) {
  if (to == ElementType::kInt64) {
    return value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())
               ? "outside int64's range"
               : nullptr;
  }
  return IntegerIntoFloat(value, to);
}

HostTensor ConvertExactly(const std::string& column_name, const HostTensor& column,
                          ElementType to) {
  if (!IsConvertibleNumeric(column.type)) {
    throw CoreError(StatusCode::kInvalidInput,
                    "column '" + column_name + "' must be numeric; got " +
                        ElementTypeName(column.type));
  }
  const int64_t count = CheckedElementCount(column.shape, std::numeric_limits<int64_t>::max() / 8);
  if (count < 0 || column.byte_size != static_cast<size_t>(count) * ElementSize(column.type) ||
      (count > 0 && column.data == nullptr)) {
    throw CoreError(StatusCode::kInvalidInput,
                    "column '" + column_name + "': shape " + ShapeToString(column.shape) +
                        " does not match its " + std::to_string(column.byte_size) + " bytes");
  }
  HostTensor out = AllocateHostTensor(to, column.shape);
  switch (to) {
    case ElementType::kFloat32:
      ConvertColumn(column_name, column, to, static_cast<float*>(MutableData(out)));
      break;
    case ElementType::kFloat64:
      ConvertColumn(column_name, column, to, static_cast<double*>(MutableData(out)));
      break;
    case ElementType::kInt64:
      ConvertColumn(column_name, column, to, static_cast<int64_t*>(MutableData(out)));
      break;
    default:
      throw CoreError(StatusCode::kInternal, std::string("transform column '") + column_name +
                                                 "' declared as " + ElementTypeName(to) +
                                                 ": no exact conversion to it");
  }
  return out;
}

}  // namespace engine
