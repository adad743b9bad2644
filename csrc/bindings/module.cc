// engine._core: the pybind11 module. Each area registers its own bindings.
#include <pybind11/pybind11.h>

#include "bind_server.h"
#include "register.h"

namespace engine::bindings { void register_transforms(pybind11::module_& m); }  // bind_transforms.cc

PYBIND11_MODULE(_core, m) {
  m.doc() = "The engine's native core (private: use the `engine` package).";
  engine::bindings::register_errors(m);
  engine::bindings::register_runtime(m);
  engine::bindings::register_session(m);
  engine::bindings::register_model(m);
  engine::bindings::register_transforms(m);
  engine::server::register_server(m);
}
