// engine._core transforms: the plan structs, TransformPlan and its apply (GIL released).
//
// Python (engine/transforms/native.py) lowers a TransformSpec to InputSpec / StepSpec /
// FeatureSpec and calls TransformPlan.apply with numpy buffers: numeric columns as 1-D arrays,
// string columns as object arrays of str or UTF-8 bytes (read in place, str through CPython's
// cached UTF-8, with the GIL held) or as Arrow-style (offsets int64[rows + 1], bytes uint8[...])
// pairs.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "gil.h"
#include "numpy_bridge.h"
#include "status.h"
#include "transforms.h"

namespace engine::bindings {

void register_transforms(pybind11::module_& m);

namespace py = pybind11;

namespace {

ElementType TypeFromName(const std::string& name) {
  if (name == "float32") return ElementType::kFloat32;
  if (name == "float64") return ElementType::kFloat64;
  if (name == "int64") return ElementType::kInt64;
  if (name == "string") return ElementType::kString;
  throw CoreError(StatusCode::kInvalidConfig,
                  "transform input dtype must be float32, float64, int64 or string; was '" + name + "'");
}

ElementType NumpyNumericType(const py::array& a) {
  const char kind = a.dtype().kind();
  const auto size = a.dtype().itemsize();
  if (kind == 'f' && size == 4) return ElementType::kFloat32;
  if (kind == 'f' && size == 8) return ElementType::kFloat64;
  if (kind == 'i' && size == 8) return ElementType::kInt64;
  return ElementType::kUndefined;
}

py::array Contiguous1D(const std::string& name, const py::handle& h, const char* what) {
  if (!py::isinstance<py::array>(h)) {
    throw CoreError(StatusCode::kInvalidInput,
                    "transform input column '" + name + "': " + what + " must be a numpy array");
  }
  auto a = py::reinterpret_borrow<py::array>(h);
  if (a.ndim() != 1 || !(a.flags() & py::array::c_style) || a.dtype().byteorder() == '>') {
    throw CoreError(StatusCode::kInvalidInput, "transform input column '" + name + "': " + what +
                                                   " must be a 1-D C-contiguous native array");
  }
  return a;
}

// UTF-8 views of a 1-D object array of str or bytes (None, float NaN and pandas.NA are the
// missing value "", as in the Python reference); see TransformStringElement.
// The views point into the objects (CPython caches a str's UTF-8 form), which the array
// keeps alive; GIL held.
std::vector<std::string_view> StrViews(const std::string& name, const py::array& a) {
  std::vector<std::string_view> views(static_cast<size_t>(a.shape(0)));
  auto* const* items = static_cast<PyObject* const*>(a.data());
  const py::ssize_t stride = a.strides(0) / static_cast<py::ssize_t>(sizeof(PyObject*));
  for (size_t i = 0; i < views.size(); ++i) {
    views[i] = TransformStringElement(name, items[static_cast<py::ssize_t>(i) * stride]);
  }
  return views;
}

// Borrowed views of `columns`; the arrays they point into are appended to `keepalive` and the
// string views of object arrays to `string_views`.
std::vector<ColumnView> Views(const TransformPlan& plan, const py::list& columns,
                              std::vector<py::array>* keepalive,
                              std::vector<std::vector<std::string_view>>* string_views) {
  if (columns.size() != plan.inputs().size()) {
    throw CoreError(StatusCode::kInvalidInput,
                    "transforms need " + std::to_string(plan.inputs().size()) +
                        " input columns; got " + std::to_string(columns.size()));
  }
  std::vector<ColumnView> views(columns.size());
  for (size_t i = 0; i < columns.size(); ++i) {
    const std::string& name = plan.inputs()[i].name;
    ColumnView& v = views[i];
    if (py::isinstance<py::tuple>(columns[i])) {
      auto pair = columns[i].cast<py::tuple>();
      if (pair.size() != 2) {
        throw CoreError(StatusCode::kInvalidInput,
                        "transform input column '" + name + "': want (offsets, bytes)");
      }
      py::array offsets = Contiguous1D(name, pair[0], "offsets");
      py::array bytes = Contiguous1D(name, pair[1], "bytes");
      if (NumpyNumericType(offsets) != ElementType::kInt64 || bytes.dtype().itemsize() != 1) {
        throw CoreError(StatusCode::kInvalidInput, "transform input column '" + name +
                                                       "': offsets must be int64 and bytes uint8");
      }
      v.type = ElementType::kString;
      v.rows = offsets.shape(0) - 1;
      if (v.rows < 0) {
        throw CoreError(StatusCode::kInvalidInput,
                        "transform input column '" + name + "': offsets must hold rows + 1 values");
      }
      v.offsets = static_cast<const int64_t*>(offsets.data());
      v.bytes = static_cast<const char*>(bytes.data());
      v.bytes_size = bytes.shape(0);
      keepalive->push_back(offsets);
      keepalive->push_back(bytes);
    } else if (py::isinstance<py::array>(columns[i]) &&
               py::reinterpret_borrow<py::array>(columns[i]).dtype().kind() == 'O') {
      auto a = py::reinterpret_borrow<py::array>(columns[i]);
      if (a.ndim() != 1) {
        throw CoreError(StatusCode::kInvalidInput, "transform input column '" + name + "' must be 1-D");
      }
      string_views->push_back(StrViews(name, a));
      v.type = ElementType::kString;
      v.rows = a.shape(0);
      v.views = string_views->back().data();
      keepalive->push_back(a);
    } else {
      py::array a = Contiguous1D(name, columns[i], "a numeric column");
      v.type = NumpyNumericType(a);
      if (v.type == ElementType::kUndefined) {
        throw CoreError(StatusCode::kInvalidInput,
                        "transform input column '" + name +
                            "' must be float32, float64 or int64; got numpy kind '" +
                            std::string(1, a.dtype().kind()) + "'");
      }
      v.rows = a.shape(0);
      v.data = a.data();
      keepalive->push_back(a);
    }
  }
  return views;
}

}  // namespace

void register_transforms(py::module_& m) {
  py::enum_<StepKind>(m, "TransformStepKind")
      .value("AFFINE", StepKind::kAffine)
      .value("LOG1P", StepKind::kLog1p)
      .value("CLIP", StepKind::kClip)
      .value("IMPUTE_NUMERIC", StepKind::kImputeNumeric)
      .value("IMPUTE_STRING", StepKind::kImputeString)
      .value("BUCKETIZE", StepKind::kBucketize)
      .value("VOCABULARY", StepKind::kVocabulary)
      .value("HASH", StepKind::kHash);
  py::enum_<Encoding>(m, "TransformEncoding")
      .value("INDEX", Encoding::kIndex)
      .value("ONEHOT", Encoding::kOneHot);

  py::class_<InputSpec>(m, "TransformInput", "A raw input column of a transform plan.")
      .def(py::init([](std::string name, const std::string& dtype) {
             return InputSpec{std::move(name), TypeFromName(dtype)};
           }),
           py::arg("name"), py::arg("dtype"))
      .def_readonly("name", &InputSpec::name);

  py::class_<StepSpec>(m, "TransformStep", "One step; only the fields of its kind are read.")
      .def(py::init<>())
      .def_readwrite("kind", &StepSpec::kind)
      .def_readwrite("offset", &StepSpec::offset)
      .def_readwrite("scale", &StepSpec::scale)
      .def_readwrite("min", &StepSpec::min)
      .def_readwrite("max", &StepSpec::max)
      .def_readwrite("value", &StepSpec::value)
      .def_readwrite("replace_inf", &StepSpec::replace_inf)
      .def_readwrite("string_value", &StepSpec::string_value)
      .def_readwrite("boundaries", &StepSpec::boundaries)
      .def_readwrite("vocabulary", &StepSpec::vocabulary)
      .def_readwrite("num_buckets", &StepSpec::num_buckets)
      .def_readwrite("seed", &StepSpec::seed)
      .def_readwrite("encoding", &StepSpec::encoding);

  py::class_<FeatureSpec>(m, "TransformFeature", "A chain over one column, or a cross.")
      .def(py::init<>())
      .def_readwrite("name", &FeatureSpec::name)
      .def_readwrite("columns", &FeatureSpec::columns)
      .def_readwrite("steps", &FeatureSpec::steps)
      .def_readwrite("cross", &FeatureSpec::cross)
      .def_readwrite("cross_buckets", &FeatureSpec::cross_buckets)
      .def_readwrite("cross_seed", &FeatureSpec::cross_seed)
      .def_readwrite("cross_encoding", &FeatureSpec::cross_encoding);

  py::class_<TransformPlan, std::shared_ptr<TransformPlan>>(
      m, "TransformPlan", "A validated, compiled transform spec (immutable, thread-safe).")
      .def(py::init([](std::vector<InputSpec> inputs, std::vector<FeatureSpec> features) {
             return std::make_shared<TransformPlan>(std::move(inputs), std::move(features));
           }),
           py::arg("inputs"), py::arg("features"))
      .def_property_readonly("width", &TransformPlan::width)
      .def(
          "apply",
          [](const TransformPlan& plan, const py::list& columns, int64_t rows, int max_threads) {
            if (rows < 0) {
              throw CoreError(StatusCode::kInvalidInput, "transform rows must be >= 0");
            }
            std::vector<py::array> keepalive;
            std::vector<std::vector<std::string_view>> string_views;
            string_views.reserve(columns.size());  // ColumnView keeps pointers into these
            auto views = Views(plan, columns, &keepalive, &string_views);
            py::array_t<float> out({rows, plan.width()});
            float* dst = out.mutable_data();
            {
              GilRelease release;
              ApplyTransformsTo(plan, views, rows, dst, max_threads);
            }
            return out;
          },
          py::arg("columns"), py::arg("rows"), py::arg("max_threads") = 0,
          "float32 [rows, width] from columns in input order: numeric 1-D arrays, 1-D object "
          "arrays of str or UTF-8 bytes (None/NaN/NA = \"\"), or (offsets int64[rows+1], "
          "bytes uint8) pairs. Releases the GIL while it runs.");
}

}  // namespace engine::bindings
