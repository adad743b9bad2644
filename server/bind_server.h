// engine._core.Server: the pybind11 face of the gRPC server (registered by csrc/bindings).
#pragma once

#include <pybind11/pybind11.h>

namespace engine::server {

void register_server(pybind11::module_& m);

}  // namespace engine::server
