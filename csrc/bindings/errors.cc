#include "register.h"

#include "status.h"

namespace engine::bindings {

namespace py = pybind11;

void register_errors(py::module_& m) {
  // Raise the engine.errors class for the code (engine/errors.py: from_core_code), so Python
  // callers see one exception tree whether an error started in C++ or in Python.
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const CoreError& e) {
      py::object errors = py::module_::import("engine.errors");
      py::object exc = errors.attr("from_core_code")(static_cast<int>(e.code()), e.what());
      PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc.ptr())), exc.ptr());
    }
  });
  m.def("status_code_names", [] {
    py::dict names;
    for (int c = 0; c <= static_cast<int>(StatusCode::kInternal); ++c) {
      names[py::int_(c)] = StatusCodeName(static_cast<StatusCode>(c));
    }
    return names;
  }, "Core status codes by number (the numbers engine.errors.from_core_code maps).");
}

}  // namespace engine::bindings
