#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "gil.h"
#include "ort_runtime.h"
#include "register.h"

namespace engine::bindings {

namespace py = pybind11;

void register_runtime(py::module_& m) {
  m.def("init_runtime", [](const std::string& path) {
    GilRelease release;
    OrtRuntime::Init(path);
  }, py::arg("library_path"),
  "Load ONNX Runtime's shared library (once per process).");
  m.def("runtime_initialized", &OrtRuntime::Initialized);
  m.def("runtime_version", [] { return OrtRuntime::Get().version(); });
  m.def("runtime_library_path", [] { return OrtRuntime::Get().library_path(); });
  m.def("available_providers", [] { return OrtRuntime::Get().available_providers(); });
}

}  // namespace engine::bindings
