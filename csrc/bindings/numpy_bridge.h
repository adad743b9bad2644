// numpy <-> HostTensor, the only place the bindings convert tensors.
//
// Inputs are borrowed, not copied: the returned HostTensor points into the numpy buffer, and
// the caller keeps the array alive (in `keepalive`) for as long as the tensor is used. Only
// strings are converted (to UTF-8 std::string), and non-contiguous or byte-swapped arrays are
// made contiguous and native first. Must be called with the GIL held.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>
#include <string_view>
#include <vector>

#include "session.h"
#include "tensor.h"
#include "transforms.h"

namespace engine::bindings {

namespace py = pybind11;

// Converts `value` (an ndarray or anything np.asarray accepts) for the input named `name`.
// Throws CoreError(kInvalidInput) naming the input for None, unsupported dtypes or bad strings.
// `transform_strings`: the input is a string column feeding transforms, whose elements are
// read by TransformStringElement (missing values allowed, bytes checked as UTF-8).
HostTensor TensorFromNumpy(const std::string& name, py::handle value,
                           std::vector<py::object>* keepalive, bool transform_strings = false);

// Copies `count` rows-worth of data into a fresh tensor the core owns (for async submits
// whose caller does not wait). GIL held.
HostTensor OwnedTensorFromNumpy(const std::string& name, py::handle value,
                                bool transform_strings = false);

// True when `name` is a string input column of `transforms` (null: no transforms).
bool IsTransformStringColumn(const TransformPlan* transforms, const std::string& name);

// One element of a string column feeding transforms, read as the spec reads it
// (engine/transforms/spec.py): a str as its UTF-8; bytes as they are, if valid UTF-8; None,
// a float NaN or pandas.NA as "" (the missing string). Anything else, or bytes that are not
// UTF-8, throws CoreError(kInvalidInput) naming `column`. The view points into `item`, which
// the caller keeps alive. GIL held.
std::string_view TransformStringElement(const std::string& column, PyObject* item);

// Makes an ndarray that shares the tensor's buffer (numeric) or holds Python str objects
// (string). GIL held.
py::object TensorToNumpy(HostTensor tensor);

// The input name `key` of an inputs mapping; CoreError(kInvalidInput) unless it is a str.
std::string InputName(py::handle key);

// Converts a {name: array} mapping into borrowed tensors; `keepalive` holds the arrays.
// String columns of `transforms` (if any) are read with TransformStringElement. Throws
// CoreError(kInvalidInput) for a name that is not a str or a value TensorFromNumpy refuses.
std::vector<std::pair<std::string, HostTensor>> TensorsFromMapping(
    const py::handle& mapping, std::vector<py::object>* keepalive,
    const TransformPlan* transforms = nullptr);

// TensorsFromMapping with copies the core owns (OwnedTensorFromNumpy), for submits whose
// caller does not wait. The same errors.
std::vector<std::pair<std::string, HostTensor>> OwnedTensorsFromMapping(
    const py::handle& mapping, const TransformPlan* transforms = nullptr);

// {name: ndarray} for `results`, which hold outputs[indices[i]]. GIL held.
py::dict OutputsToDict(const std::vector<TensorInfo>& outputs, const std::vector<size_t>& indices,
                       std::vector<HostTensor> results);

// [(name, dtype name, shape)] of a signature, -1 for dynamic dims. GIL held.
py::list DescribeSignature(const std::vector<TensorInfo>& infos);

// numpy dtype for an element type; throws for kUndefined.
py::dtype DtypeOf(ElementType type);

}  // namespace engine::bindings
