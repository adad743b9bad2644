// engine._core.Session: one ORT session, run synchronously. The Python Model builds on it.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "gil.h"
#include "numpy_bridge.h"
#include "register.h"
#include "session.h"
#include "validate.h"

namespace engine::bindings {

namespace py = pybind11;

namespace {

SessionOptions MakeOptions(int intra_op_threads, int inter_op_threads, bool allow_spinning,
                           const std::string& graph_optimization_level,
                           const std::vector<std::string>& providers, int device_id) {
  SessionOptions o;
  o.intra_op_threads = intra_op_threads;
  o.inter_op_threads = inter_op_threads;
  o.allow_spinning = allow_spinning;
  o.graph_optimization_level = graph_optimization_level;
  o.providers = providers;
  o.cuda_device_id = device_id;
  return o;
}


}  // namespace

void register_session(py::module_& m) {
  py::class_<Session>(m, "Session", "One ONNX Runtime session (thread-safe runs).")
      .def_static(
          "from_path",
          [](const std::string& path, int intra, int inter, bool spinning,
             const std::string& level, const std::vector<std::string>& providers, int device) {
            auto options = MakeOptions(intra, inter, spinning, level, providers, device);
            GilRelease release;
            return Session::FromPath(path, options);
          },
          py::arg("path"), py::arg("intra_op_threads") = 1, py::arg("inter_op_threads") = 1,
          py::arg("allow_spinning") = false, py::arg("graph_optimization_level") = "all",
          py::arg("providers") = std::vector<std::string>{"cpu"}, py::arg("device_id") = 0)
      .def_static(
          "from_bytes",
          [](const py::bytes& data, int intra, int inter, bool spinning, const std::string& level,
             const std::vector<std::string>& providers, int device) {
            auto options = MakeOptions(intra, inter, spinning, level, providers, device);
            std::string bytes = data;
            GilRelease release;
            return Session::FromBytes(bytes, options);
          },
          py::arg("data"), py::arg("intra_op_threads") = 1, py::arg("inter_op_threads") = 1,
          py::arg("allow_spinning") = false, py::arg("graph_optimization_level") = "all",
          py::arg("providers") = std::vector<std::string>{"cpu"}, py::arg("device_id") = 0)
      .def_property_readonly("inputs", [](const Session& s) { return DescribeSignature(s.inputs()); },
                             "[(name, dtype, shape)] with -1 for dynamic dims")
      .def_property_readonly("outputs", [](const Session& s) { return DescribeSignature(s.outputs()); })
      .def_property_readonly("providers", &Session::providers)
      .def(
          "run",
          [](const Session& s, const py::handle& inputs,
             const std::vector<std::string>& output_names) {
            std::vector<py::object> keepalive;
            auto tensors = TensorsFromMapping(inputs, &keepalive);
            auto bound = BindInputs(s.inputs(), tensors);
            auto indices = SelectOutputs(s.outputs(), output_names);
            std::vector<HostTensor> results;
            {
              GilRelease release;
              results = s.Run(bound, indices);
            }
            return OutputsToDict(s.outputs(), indices, std::move(results));
          },
          py::arg("inputs"), py::arg("output_names") = std::vector<std::string>{},
          "Validate and run; GIL released during the run. Returns {name: ndarray}.");
}

}  // namespace engine::bindings
