"""engine.ModelConfig: strict types, bounds that fit the core's C++ types, transforms parsed up
front; and its declared inputs/outputs checked against the model by engine.load."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import factories
import numpy as np
import pytest

import engine
from engine.config import MAX_DURATION_US, MAX_INSTANCES, MAX_INT32, MAX_THREADS, ModelConfig
from engine.errors import InvalidConfigError
from engine.signature import TensorSpec


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"batching": "false"}, "batching must be None (automatic), True or False; was 'false'"),
        ({"batching": 2}, "batching must be None (automatic), True or False; was 2"),
        ({"allow_spinning": "yes"}, "allow_spinning must be True or False; was 'yes'"),
        ({"allow_spinning": 1}, "allow_spinning must be True or False; was 1"),
        ({"completion_spin": "no"}, "completion_spin must be True or False; was 'no'"),
        ({"worker_cpus": (0, -1)},
         r"worker_cpus must be CPU numbers, ints in [0, 1023]; was (0, -1)"),
        ({"worker_cpus": (True,)}, r"worker_cpus must be CPU numbers, ints in [0, 1023]"),
        ({"worker_cpus": "0"}, "worker_cpus must be a sequence (list or tuple); was '0'"),
        ({"max_batch_size": True}, "max_batch_size must be an int in [0, 2147483647]; was True"),
        ({"instances": 2.0}, "instances must be an int in [1, 256]; was 2.0"),
        ({"preferred_batch_sizes": (True,)}, "preferred_batch_sizes must be ints in [1, "),
        ({"preferred_batch_sizes": (8, 8)}, "preferred_batch_sizes must not repeat; was (8, 8)"),
        ({"preferred_batch_sizes": 8}, "preferred_batch_sizes must be a sequence"),
        ({"providers": "cpu"}, "providers must be a sequence (list or tuple); was 'cpu'"),
        ({"graph_optimization_level": ["all"]}, "graph_optimization_level must be one of"),
        ({"transform_target": 3}, "transform_target must be a str"),
        ({"transform_target": "x"}, "transform_target needs transforms; was 'x'"),
        ({"transforms": "abc"}, "transforms must be a transform spec in its JSON form"),
        ({"transforms": {"bad": 1}}, "transforms: transform spec: top level: missing field(s)"),
        ({"inputs": ("x",)}, "inputs must be TensorSpec values; was 'x'"),
        ({"inputs": (TensorSpec("x", "FP32", (1,)),)}, "dtype must be an element type name"),
        ({"outputs": (TensorSpec("y", "float32", (-2,)),)}, "shape must be a sequence of ints"),
        (
            {"inputs": (TensorSpec("x", "float32", (1,)), TensorSpec("x", "float32", (1,)))},
            "inputs need distinct, non-empty names; was 'x'",
        ),
        ({"max_batch_size": 0, "batching": True}, "batching=True needs max_batch_size >= 1"),
    ],
)
def test_bad_types_and_values_are_refused(kwargs: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidConfigError) as info:
        ModelConfig(**kwargs)
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("max_queue_delay_us", 2**70, f"[0, {MAX_DURATION_US}]"),
        ("default_timeout_us", 2**63, f"[0, {MAX_DURATION_US}]"),
        ("max_batch_size", 2**40, f"[0, {MAX_INT32}]"),
        ("max_queue_size", 2**40, f"[1, {MAX_INT32}]"),
        ("device_id", 2**31, f"[0, {MAX_INT32}]"),
        ("intra_op_threads", 100_000, f"[0, {MAX_THREADS}]"),
        ("inter_op_threads", MAX_THREADS + 1, f"[0, {MAX_THREADS}]"),
        ("instances", 10**6, f"[1, {MAX_INSTANCES}]"),
    ],
)
def test_upper_bounds_name_field_value_and_range(field: str, value: int, allowed: str) -> None:
    # Values past these would fail in pybind ("Unable to cast ... '?'") or hang the load.
    with pytest.raises(InvalidConfigError) as info:
        ModelConfig(**{field: value})
    assert str(info.value).startswith(f"{field} must be an int <= ")
    assert str(info.value).endswith(f"; was {value} (allowed: {allowed})")


def test_instances_times_threads_is_bounded_per_session() -> None:
    with pytest.raises(InvalidConfigError, match="instances x intra_op_threads must be <= 4096"):
        ModelConfig(instances=256, intra_op_threads=256)
    # One shared session has one pool, however many runs it takes at once.
    ModelConfig(instances=256, intra_op_threads=256, instance_mode="shared")


def test_bounds_themselves_are_accepted() -> None:
    config = ModelConfig(
        max_batch_size=MAX_INT32, max_queue_size=MAX_INT32, max_queue_delay_us=MAX_DURATION_US,
        default_timeout_us=MAX_DURATION_US, instances=MAX_INSTANCES, intra_op_threads=16,
        inter_op_threads=MAX_THREADS, device_id=MAX_INT32, batching=False,
        preferred_batch_sizes=(32, 8),
    )
    assert ModelConfig.from_dict(config.to_dict()) == config


def test_from_dict_errors_are_config_errors() -> None:
    with pytest.raises(InvalidConfigError, match="must be a mapping of field names"):
        ModelConfig.from_dict(["x"])  # type: ignore[arg-type]
    with pytest.raises(InvalidConfigError, match=r"inputs\[0\]: it lacks 'dtype'"):
        ModelConfig.from_dict({"inputs": [{"name": "x", "shape": [1]}]})
    with pytest.raises(InvalidConfigError, match=r"inputs\[0\]: unknown element type 'complex'"):
        ModelConfig.from_dict({"inputs": [{"name": "x", "dtype": "complex", "shape": [1]}]})
    with pytest.raises(InvalidConfigError, match=r"outputs\[0\] must be an object"):
        ModelConfig.from_dict({"outputs": ["y"]})
    with pytest.raises(InvalidConfigError, match="allow_spinning must be True or False"):
        ModelConfig.from_dict({"allow_spinning": "yes"})


def test_declared_shapes_are_normalised_to_tuples() -> None:
    config = ModelConfig(inputs=(TensorSpec("x", "float32", [-1, 4]),))  # type: ignore[arg-type]
    assert config.inputs == (TensorSpec("x", "float32", (-1, 4)),)
    assert hash(config) == hash(ModelConfig(inputs=(TensorSpec("x", "float32", (-1, 4)),)))


def test_max_batch_size_zero_means_no_batch_dimension(mlp_path: Path) -> None:
    with engine.load(mlp_path, config=ModelConfig(max_batch_size=0)) as model:
        assert model.batching is False
        assert model.predict(np.ones((100, 32), np.float32))["y"].shape == (100, 1)


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        (
            TensorSpec("zz", "float32", (-1, 32)),
            "mlp.onnx: config declares input 'zz' but the model's inputs are ['x']",
        ),
        (
            TensorSpec("x", "float64", (-1, 32)),
            "mlp.onnx: config declares input 'x' as float64 but the model has float32",
        ),
        (
            TensorSpec("x", "float32", (-1, 5)),
            "config declares input 'x' with shape [-1, 5] but the model has [-1, 32]",
        ),
        (TensorSpec("x", "float32", (32,)), "with shape [32] but the model has [-1, 32]"),
    ],
)
def test_load_refuses_declared_inputs_that_contradict_the_model(
    mlp_path: Path, spec: TensorSpec, fragment: str
) -> None:
    with pytest.raises(InvalidConfigError) as info:
        engine.load(mlp_path, config=ModelConfig(inputs=(spec,)))
    assert fragment in str(info.value)
    assert str(mlp_path.parent) not in str(info.value)  # a file name, never its folder


def test_load_checks_declared_outputs_and_accepts_a_match(mlp_path: Path) -> None:
    with pytest.raises(InvalidConfigError, match="config declares output 'nope'"):
        engine.load(mlp_path, config=ModelConfig(outputs=(TensorSpec("nope", "float32", (-1, 1)),)))
    # -1 on either side matches anything.
    config = ModelConfig(inputs=(TensorSpec("x", "float32", (8, -1)),),
                         outputs=(TensorSpec("y", "float32", (-1, 1)),))
    with engine.load(mlp_path, config=config) as model:
        assert model.inputs == (TensorSpec("x", "float32", (-1, 32)),)
    with engine.load(mlp_path.read_bytes(), config=config) as model:
        assert model.name == "<bytes>"
    with pytest.raises(InvalidConfigError, match="<bytes>: config declares input 'x' as int64"):
        engine.load(mlp_path.read_bytes(),
                    config=ModelConfig(inputs=(TensorSpec("x", "int64", (-1, 32)),)))


def test_with_transforms_declared_inputs_are_the_graph_inputs(tmp_path: Path) -> None:
    from onnx import TensorProto, helper

    from engine.transforms import fit

    spec = fit({"age": np.linspace(20.0, 60.0, 50)}, {"age": [{"op": "standardize"}]})
    features = helper.make_tensor_value_info("features", TensorProto.FLOAT, ["N", spec.width])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", spec.width])
    graph = helper.make_graph([helper.make_node("Identity", ["features"], ["y"])], "id",
                              [features], [y])
    path = factories._save(graph, tmp_path / "identity.onnx")
    declared = TensorSpec("features", "float32", (-1, spec.width))
    config = ModelConfig(transforms=spec.to_dict(), inputs=(declared,))
    with engine.load(path, config=config) as model:
        assert [t.name for t in model.inputs] == ["age"]  # callers send the raw column
    wrong = ModelConfig(transforms=spec.to_dict(), inputs=(TensorSpec("age", "float64", (-1,)),))
    with pytest.raises(InvalidConfigError, match="config declares input 'age' but the model's"):
        engine.load(path, config=wrong)
