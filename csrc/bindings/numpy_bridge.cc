#include "numpy_bridge.h"

#include <pybind11/stl.h>

#include <cmath>
#include <cstring>
#include <memory>

#include "session.h"
#include "status.h"
#include "utf8.h"

namespace engine::bindings {
namespace {

constexpr bool kLittleEndian = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;
// numpy's NPY_HALF type number (pybind11 names no constant for it).
constexpr int kNpyHalf = 23;

[[noreturn]] void Invalid(const std::string& name, const std::string& message) {
  throw CoreError(StatusCode::kInvalidInput, "input '" + name + "': " + message);
}

ElementType TypeOfDtype(const py::dtype& dtype) {
  const char kind = dtype.kind();
  const auto size = dtype.itemsize();
  switch (kind) {
    case 'f':
      if (size == 4) return ElementType::kFloat32;
      if (size == 8) return ElementType::kFloat64;
      if (size == 2) return ElementType::kFloat16;
      break;
    case 'i':
      if (size == 1) return ElementType::kInt8;
      if (size == 2) return ElementType::kInt16;
      if (size == 4) return ElementType::kInt32;
      if (size == 8) return ElementType::kInt64;
      break;
    case 'u':
      if (size == 1) return ElementType::kUInt8;
      if (size == 2) return ElementType::kUInt16;
      if (size == 4) return ElementType::kUInt32;
      if (size == 8) return ElementType::kUInt64;
      break;
    case 'b': return ElementType::kBool;
    case 'U':
    case 'S':
    case 'O': return ElementType::kString;
    default: break;
  }
  return ElementType::kUndefined;
}

std::string ToUtf8(const std::string& name, py::handle item) {
  if (PyUnicode_Check(item.ptr())) {
    Py_ssize_t size = 0;
    const char* data = PyUnicode_AsUTF8AndSize(item.ptr(), &size);
    if (data == nullptr) {
      PyErr_Clear();
      Invalid(name, "a string element cannot be encoded as UTF-8");
    }
    return std::string(data, static_cast<size_t>(size));
  }
  if (PyBytes_Check(item.ptr())) {
    char* data = nullptr;
    Py_ssize_t size = 0;
    PyBytes_AsStringAndSize(item.ptr(), &data, &size);
    return std::string(data, static_cast<size_t>(size));
  }
  // An object array reaches here for any model input: say what it was taken for.
  Invalid(name, std::string("an object array is read as strings, and an element is ") +
                    Py_TYPE(item.ptr())->tp_name + ", not str or bytes; a numeric input takes a "
                    "numeric array (numpy.asarray(values, dtype=...))");
}


// None, a float NaN (numpy's float64 is a float) or pandas.NA: what pandas and Arrow call null.
bool IsMissing(PyObject* item) {
  return item == Py_None || (PyFloat_Check(item) && std::isnan(PyFloat_AS_DOUBLE(item))) ||
         std::strcmp(Py_TYPE(item)->tp_name, "NAType") == 0;
}

std::vector<int64_t> ShapeOfArray(const py::array& array) {
  std::vector<int64_t> shape;
  for (py::ssize_t i = 0; i < array.ndim(); ++i) shape.push_back(array.shape(i));
  return shape;
}

py::array AsArray(const std::string& name, py::handle value) {
  if (py::isinstance<py::array>(value)) return py::reinterpret_borrow<py::array>(value);
  // np.asarray(None) is a 0-d object array, which would be reported as a bad string element.
  if (value.is_none()) {
    throw CoreError(StatusCode::kInvalidInput,
                    "input '" + name + "' is None; expected an array (a numpy array or "
                    "anything numpy.asarray takes)");
  }
  try {
    return py::array(py::module_::import("numpy").attr("asarray")(value));
  } catch (const py::error_already_set& e) {
    // The exception's own message: what() appends Python's traceback ("\n\nAt: ...").
    Invalid(name, "cannot be converted to an array: " +
                      e.type().attr("__name__").cast<std::string>() + ": " +
                      std::string(py::str(e.value())));
  }
}

}  // namespace

py::dtype DtypeOf(ElementType type) {
  // By type number, not by name: parsing "float32" on every output showed in profiles.
  switch (type) {
    case ElementType::kFloat32: return py::dtype(py::detail::npy_api::NPY_FLOAT_);
    case ElementType::kFloat64: return py::dtype(py::detail::npy_api::NPY_DOUBLE_);
    case ElementType::kFloat16: return py::dtype(kNpyHalf);
    case ElementType::kInt8: return py::dtype(py::detail::npy_api::NPY_BYTE_);
    case ElementType::kInt16: return py::dtype(py::detail::npy_api::NPY_SHORT_);
    case ElementType::kInt32: return py::dtype(py::detail::npy_api::NPY_INT32_);
    case ElementType::kInt64: return py::dtype(py::detail::npy_api::NPY_INT64_);
    case ElementType::kUInt8: return py::dtype(py::detail::npy_api::NPY_UBYTE_);
    case ElementType::kUInt16: return py::dtype(py::detail::npy_api::NPY_USHORT_);
    case ElementType::kUInt32: return py::dtype(py::detail::npy_api::NPY_UINT32_);
    case ElementType::kUInt64: return py::dtype(py::detail::npy_api::NPY_UINT64_);
    case ElementType::kBool: return py::dtype(py::detail::npy_api::NPY_BOOL_);
    case ElementType::kString: return py::dtype(py::detail::npy_api::NPY_OBJECT_);
    case ElementType::kUndefined: break;
  }
  throw CoreError(StatusCode::kInternal, "no numpy dtype for an undefined element type");
}

std::string_view TransformStringElement(const std::string& column, PyObject* item) {
  if (PyUnicode_Check(item)) {
    Py_ssize_t size = 0;
    const char* utf8 = PyUnicode_AsUTF8AndSize(item, &size);
    if (utf8 == nullptr) {
      PyErr_Clear();
      throw CoreError(StatusCode::kInvalidInput,
                      "column '" + column + "' holds a string that is not valid UTF-8");
    }
    return {utf8, static_cast<size_t>(size)};
  }
  if (PyBytes_Check(item)) {
    const char* data = PyBytes_AS_STRING(item);
    const auto size = static_cast<size_t>(PyBytes_GET_SIZE(item));
    if (!IsUtf8(std::string_view(data, size))) {
      throw CoreError(StatusCode::kInvalidInput,
                      "column '" + column + "' holds bytes that are not valid UTF-8");
    }
    return {data, size};
  }
  if (IsMissing(item)) return {};
  throw CoreError(StatusCode::kInvalidInput,
                  "column '" + column + "' must hold only strings (str, UTF-8 bytes, or None/NaN "
                  "for missing); found " + Py_TYPE(item)->tp_name);
}

bool IsTransformStringColumn(const TransformPlan* transforms, const std::string& name) {
  if (transforms == nullptr) return false;
  for (const InputSpec& in : transforms->inputs()) {
    if (in.name == name) return in.type == ElementType::kString;
  }
  return false;
}

HostTensor TensorFromNumpy(const std::string& name, py::handle value,
                           std::vector<py::object>* keepalive, bool transform_strings) {
  py::array array = AsArray(name, value);
  HostTensor t;
  t.type = TypeOfDtype(array.dtype());
  if (t.type == ElementType::kUndefined) {
    Invalid(name, "numpy dtype " + std::string(py::str(array.dtype())) + " is not supported");
  }
  t.shape = ShapeOfArray(array);
  if (t.type == ElementType::kString) {
    // One pass over the flattened elements; strings are the one type that must be converted.
    py::array flat = py::array(array.attr("ravel")());
    const py::ssize_t count = flat.size();
    t.strings.reserve(static_cast<size_t>(count));
    // An object array's ravel() is C-contiguous: read its PyObject* slots directly. Fixed-width
    // 'U'/'S' arrays go through tolist(), which drops their NUL padding.
    py::object owner = array.dtype().kind() == 'O' ? py::object(flat) : flat.attr("tolist")();
    PyObject* const* items = array.dtype().kind() == 'O'
                                 ? static_cast<PyObject* const*>(flat.data())
                                 : PySequence_Fast_ITEMS(owner.ptr());
    for (py::ssize_t i = 0; i < count; ++i) {
      if (transform_strings) {
        t.strings.emplace_back(TransformStringElement(name, items[i]));
      } else {
        t.strings.push_back(ToUtf8(name, items[i]));
      }
    }
    return t;
  }
  // '=' native, '|' not applicable; '<' is native on the little-endian hosts we build for.
  const char order = array.dtype().byteorder();
  const bool native = order == '=' || order == '|' || order == (kLittleEndian ? '<' : '>');
  if (!native) array = py::array(array.attr("astype")(array.dtype().attr("newbyteorder")("=")));
  if (!(array.flags() & py::array::c_style)) {
    array = py::array(py::module_::import("numpy").attr("ascontiguousarray")(array));
  }
  t.data = array.data();
  t.byte_size = static_cast<size_t>(array.nbytes());
  keepalive->push_back(array);
  return t;
}

HostTensor OwnedTensorFromNumpy(const std::string& name, py::handle value,
                                bool transform_strings) {
  std::vector<py::object> keepalive;
  HostTensor borrowed = TensorFromNumpy(name, value, &keepalive, transform_strings);
  if (borrowed.type == ElementType::kString) return borrowed;  // strings are already copies
  HostTensor owned = AllocateHostTensor(borrowed.type, borrowed.shape);
  if (borrowed.byte_size > 0) std::memcpy(MutableData(owned), borrowed.data, borrowed.byte_size);
  owned.byte_size = borrowed.byte_size;
  return owned;
}

py::object TensorToNumpy(HostTensor tensor) {
  std::vector<py::ssize_t> shape(tensor.shape.begin(), tensor.shape.end());
  if (tensor.type == ElementType::kString) {
    py::array result(DtypeOf(ElementType::kString), shape);
    auto** items = static_cast<PyObject**>(result.mutable_data());
    for (size_t i = 0; i < tensor.strings.size(); ++i) {
      const std::string& s = tensor.strings[i];
      PyObject* str = PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()),
                                           "surrogateescape");
      if (str == nullptr) throw py::error_already_set();
      Py_XDECREF(items[i]);  // numpy filled object arrays with None references
      items[i] = str;
    }
    return std::move(result);
  }
  // The capsule owns a copy of the shared owner; numpy frees it with the array.
  auto* owner = new std::shared_ptr<const void>(std::move(tensor.owner));
  py::capsule base(owner, [](void* p) { delete static_cast<std::shared_ptr<const void>*>(p); });
  return py::array(DtypeOf(tensor.type), shape, tensor.data, base);
}

std::string InputName(py::handle key) {
  if (!py::isinstance<py::str>(key)) {
    throw CoreError(StatusCode::kInvalidInput,
                    std::string("input names must be str; was ") + Py_TYPE(key.ptr())->tp_name +
                        " " + std::string(py::repr(key)));
  }
  return key.cast<std::string>();
}

// Converts a {name: array} mapping into borrowed tensors (GIL held); `keepalive` holds arrays.
std::vector<std::pair<std::string, HostTensor>> TensorsFromMapping(
    const py::handle& mapping, std::vector<py::object>* keepalive,
    const TransformPlan* transforms) {
  std::vector<std::pair<std::string, HostTensor>> tensors;
  py::dict items = py::dict(py::reinterpret_borrow<py::object>(mapping));
  tensors.reserve(items.size());
  for (auto item : items) {
    std::string name = InputName(item.first);
    tensors.emplace_back(name, TensorFromNumpy(name, item.second, keepalive,
                                               IsTransformStringColumn(transforms, name)));
  }
  return tensors;
}

std::vector<std::pair<std::string, HostTensor>> OwnedTensorsFromMapping(
    const py::handle& mapping, const TransformPlan* transforms) {
  std::vector<std::pair<std::string, HostTensor>> tensors;
  py::dict items = py::dict(py::reinterpret_borrow<py::object>(mapping));
  tensors.reserve(items.size());
  for (auto item : items) {
    std::string name = InputName(item.first);
    tensors.emplace_back(
        name, OwnedTensorFromNumpy(name, item.second, IsTransformStringColumn(transforms, name)));
  }
  return tensors;
}

py::dict OutputsToDict(const std::vector<TensorInfo>& outputs, const std::vector<size_t>& indices,
                       std::vector<HostTensor> results) {
  py::dict dict;
  for (size_t i = 0; i < results.size(); ++i) {
    dict[py::str(outputs[indices[i]].name)] = TensorToNumpy(std::move(results[i]));
  }
  return dict;
}

py::list DescribeSignature(const std::vector<TensorInfo>& infos) {
  py::list result;
  for (const auto& t : infos) {
    result.append(py::make_tuple(t.name, ElementTypeName(t.type), py::tuple(py::cast(t.shape))));
  }
  return result;
}

}  // namespace engine::bindings
