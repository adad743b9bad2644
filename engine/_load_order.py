"""Refuse a process layout in which loading the native core would abort the process.

``engine._core`` links Debian's C++ protobuf runtime (through grpc++). ``grpc_tools``' protoc
module carries its own, newer copy. Both export the same GNU-unique symbols (for example the
guard of ``protobuf::internal::ShutdownData::get()::data``), which the dynamic linker binds
process-wide whatever the load flags: when grpc_tools' copy is loaded first, the system copy
reuses its objects, whose layout differs, and the process aborts inside the loader. In the
other order both work. So the clash is turned into an ImportError that says what to do.
"""

from __future__ import annotations

import sys

# Modules that bring a second C++ protobuf runtime with conflicting unique symbols.
_CONFLICTING = ("grpc_tools._protoc_compiler",)


def check_native_load_order() -> None:
    """Raise ImportError if a conflicting protobuf runtime is already loaded."""
    if "engine._core" in sys.modules:
        return  # loaded first: later imports of grpc_tools are safe
    loaded = [name for name in _CONFLICTING if name in sys.modules]
    if loaded:
        raise ImportError(
            f"engine must be imported before {loaded[0]} (grpc_tools.protoc): both carry a "
            "C++ protobuf runtime, and loading engine's second would abort the process. "
            "Import engine first, or run protoc in a subprocess "
            "(python -m grpc_tools.protoc ...)."
        )
