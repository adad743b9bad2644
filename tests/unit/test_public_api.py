"""The public surface: explicit __all__, one exception tree fully mapped to gRPC codes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import engine
from engine import errors


def test_all_names_exist_and_nothing_private_is_exported() -> None:
    assert sorted(engine.__all__) == sorted(set(engine.__all__))
    for name in engine.__all__:
        assert hasattr(engine, name), name
        assert not name.startswith("_")
    assert "_core" not in engine.__all__


def _subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub} | _subclasses(sub)
    return found


def test_every_error_class_maps_to_a_grpc_code() -> None:
    import grpc

    tree = {errors.EngineError} | _subclasses(errors.EngineError)
    for cls in tree:
        if cls.__module__ != "engine.errors":
            continue
        assert cls in errors.GRPC_STATUS, f"{cls.__name__} has no gRPC status"
        code = errors.GRPC_STATUS[cls]
        assert code != "UNKNOWN"
        assert hasattr(grpc.StatusCode, code), code
        assert cls.__name__.endswith("Error")


def test_core_codes_map_to_the_tree() -> None:
    from engine import _core

    names = _core.status_code_names()
    assert names[0] == "OK"
    for code in range(1, len(names)):
        exc = errors.from_core_code(code, "m")
        assert isinstance(exc, errors.EngineError)
    assert type(errors.from_core_code(1, "m")) is errors.InvalidInputError
    assert type(errors.from_core_code(6, "m")) is errors.OverloadedError
    assert type(errors.from_core_code(8, "m")) is errors.DeadlineExceededError


def test_load_by_registry_reference(tmp_path: Path, mlp_path: Path) -> None:
    registry = engine.Registry(home=tmp_path)
    config = engine.ModelConfig(max_batch_size=8)
    registry.register("mlp", mlp_path, config=config, alias="production")
    with engine.load("mlp@production", registry_home=tmp_path) as model:
        assert (model.name, model.version) == ("mlp", 1)
        assert model.config.max_batch_size == 8
        assert model.predict(np.zeros((2, 32), np.float32))["y"].shape == (2, 1)
    with pytest.raises(errors.ModelNotFoundError):
        engine.load("nope:3", registry_home=tmp_path)
    registry.close()


def test_import_engine_loads_the_registry_only_when_used() -> None:
    # SQLAlchemy was two thirds of `import engine`; inference code does not need it.
    import subprocess
    import sys

    script = ("import sys, engine\n"
              "assert 'sqlalchemy' not in sys.modules, 'loaded by import engine'\n"
              "from engine import Registry, ModelVersion\n"
              "assert Registry.__name__ == 'Registry' and 'sqlalchemy' in sys.modules\n"
              "try:\n    engine.NoSuchName\nexcept AttributeError as exc:\n    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert out.strip() == "module 'engine' has no attribute 'NoSuchName'"
