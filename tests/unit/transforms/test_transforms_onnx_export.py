"""Export: the preprocessing graph merged in front of a model runs in plain ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import transforms_gen as gen
from onnx import TensorProto, helper, numpy_helper

from engine.errors import ExportError
from engine.transforms.fit import fit
from engine.transforms.onnx_export import merge_with_model, to_onnx
from engine.transforms.reference import apply_reference


def linear_model(width: int | str, *, opset: int = 17, elem: int = TensorProto.FLOAT,
                 extra_input: bool = False) -> onnx.ModelProto:
    w = np.linspace(-1, 1, width if isinstance(width, int) else 4).astype(np.float32)[:, None]
    inputs = [helper.make_tensor_value_info("x", elem, ["batch", width])]
    nodes = [helper.make_node("MatMul", ["x", "w"], ["y"])]
    if extra_input:
        inputs.append(helper.make_tensor_value_info("bias", TensorProto.FLOAT, ["batch", 1]))
        nodes = [helper.make_node("MatMul", ["x", "w"], ["xw"]),
                 helper.make_node("Add", ["xw", "bias"], ["y"])]
    graph = helper.make_graph(nodes, "linear", inputs,
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 1])],
                              [numpy_helper.from_array(w, "w")])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.fixture(scope="module")
def fitted() -> tuple:
    rng = np.random.default_rng(11)
    spec = fit(gen.frame(rng, 300, gen.INPUTS, unseen=False), gen.template(rng))
    serve = gen.frame(rng, 257, gen.INPUTS, unseen=True)
    feeds = {k: np.array(["" if s is None else s for s in v], dtype=object) if v.dtype == object
             else v for k, v in serve.items()}
    return spec, serve, feeds


@pytest.mark.parametrize("opset", [11, 13, 17, 21])
def test_merged_model_equals_reference_then_model(fitted: tuple, tmp_path: Path, opset: int) -> None:
    spec, serve, feeds = fitted
    out = tmp_path / "merged.onnx"
    merge_with_model(spec, linear_model(spec.width, opset=opset), out)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == [c.name for c in spec.inputs]
    w = np.linspace(-1, 1, spec.width).astype(np.float32)[:, None]

    def finite(v: np.ndarray) -> np.ndarray:  # keep the matmul free of inf - inf
        return np.nan_to_num(v, nan=0, posinf=0, neginf=0) if v.dtype.kind == "f" else v

    got = sess.run(None, {k: finite(v) for k, v in feeds.items()})[0]
    expected = apply_reference(spec, {k: finite(v) for k, v in serve.items()}) @ w
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)


def test_merge_from_path_and_symbolic_width(fitted: tuple, tmp_path: Path) -> None:
    spec, _, _ = fitted
    path = tmp_path / "model.onnx"
    model = linear_model(spec.width)
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "width"
    onnx.save(model, str(path))
    merged = merge_with_model(spec, path)
    assert [o.name for o in merged.graph.output] == ["y"]


def test_merge_with_named_input_among_several(fitted: tuple) -> None:
    spec, _, feeds = fitted
    merged = merge_with_model(spec, linear_model(spec.width, extra_input=True), model_input="x")
    sess = ort.InferenceSession(merged.SerializeToString(), providers=["CPUExecutionProvider"])
    rows = len(feeds["a"])
    out = sess.run(None, {**feeds, "bias": np.ones((rows, 1), np.float32)})[0]
    assert out.shape == (rows, 1)


@pytest.mark.parametrize(
    ("model_kwargs", "merge_kwargs", "fragment"),
    [
        ({"width": 3}, {}, "takes 3 features; the transform spec produces"),
        ({"elem": TensorProto.DOUBLE}, {}, "must be float32 to take the transformed features; it is DOUBLE"),
        ({"extra_input": True}, {}, "pass model_input= to say which one"),
        ({}, {"model_input": "nope"}, "the model has no input 'nope'"),
    ],
)
def test_merge_errors(fitted: tuple, model_kwargs: dict, merge_kwargs: dict, fragment: str) -> None:
    spec = fitted[0]
    kwargs = {"width": spec.width, **model_kwargs}
    with pytest.raises(ExportError) as info:
        merge_with_model(spec, linear_model(**kwargs), **merge_kwargs)
    assert fragment in str(info.value)


def test_export_rejects_old_opset(fitted: tuple) -> None:
    with pytest.raises(ExportError, match="needs ai.onnx opset >= 13; was 12"):
        to_onnx(fitted[0], opset=12)


def test_exported_graph_passes_the_checker(fitted: tuple) -> None:
    model = to_onnx(fitted[0])
    onnx.checker.check_model(model, full_check=True)
    out = model.graph.output[0].type.tensor_type.shape.dim
    assert out[1].dim_value == fitted[0].width
