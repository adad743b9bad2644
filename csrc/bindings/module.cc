// engine._core: the pybind11 module. Each area registers its own bindings.
#include <pybind11/pybind11.h>

#include "bind_server.h"
#include "register.h"

PYBIND11_MODULE(_core, m) {
  m.doc() = "The engine's native core (private: use the `engine` package).";
  engine::bindings::register_errors(m);
  engine::bindings::register_runtime(m);
  engine::bindings::register_session(m);
  engine::bindings::register_model(m);
  engine::server::register_server(m);
}
