// One register_*() per area of the core; module.cc calls them all.
#pragma once

#include <pybind11/pybind11.h>

namespace engine::bindings {

void register_errors(pybind11::module_& m);
void register_runtime(pybind11::module_& m);
void register_session(pybind11::module_& m);
void register_model(pybind11::module_& m);

}  // namespace engine::bindings
