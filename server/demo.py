"""The demo model of ``engine serve --demo``: generated on first run, so a newcomer has a
working server with one command and nothing to download.

It is a small MLP, 32 -> 256 -> 256 -> 1 with ReLU, fixed random weights (seeded), float32,
dynamic batch dimension, written as a Triton-layout repository under ``ENGINE_HOME/demo``::

    demo/mlp/config.pbtxt
    demo/mlp/1/model.onnx

The benchmark harness uses the same model (:func:`make_mlp`).
"""

from __future__ import annotations

import itertools
import os
import tempfile
from pathlib import Path

import numpy as np

__all__ = ["DEMO_MODEL", "demo_repository", "make_mlp"]

DEMO_MODEL = "mlp"
_CONFIG = """name: "mlp"
platform: "onnxruntime_onnx"
max_batch_size: 64
input [ { name: "x", data_type: TYPE_FP32, dims: [ 32 ] } ]
output [ { name: "y", data_type: TYPE_FP32, dims: [ 1 ] } ]
dynamic_batching { }
"""


def make_mlp(path: Path, *, sizes: tuple[int, ...] = (32, 256, 256, 1), seed: int = 0) -> Path:
    """Write the MLP to ``path`` atomically: input ``x`` [batch, sizes[0]], output ``y``."""
    from onnx import TensorProto, helper, numpy_helper, save_model

    rng = np.random.default_rng(seed)
    nodes, weights = [], []
    current = "x"
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes)):
        w = (rng.standard_normal((fan_in, fan_out)) / np.sqrt(fan_in)).astype(np.float32)
        b = np.zeros(fan_out, dtype=np.float32)
        weights += [numpy_helper.from_array(w, f"w{i}"), numpy_helper.from_array(b, f"b{i}")]
        last = i == len(sizes) - 2
        out = "y" if last else f"h{i}"
        gemm_out = out if last else f"g{i}"
        nodes.append(helper.make_node("Gemm", [current, f"w{i}", f"b{i}"], [gemm_out]))
        if not last:
            nodes.append(helper.make_node("Relu", [gemm_out], [out]))
        current = out
    graph = helper.make_graph(
        nodes, "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", sizes[0]])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", sizes[-1]])],
        weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    os.close(fd)
    try:
        save_model(model, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def demo_repository(engine_home: Path) -> Path:
    """The demo repository under ``engine_home``, created if missing. Returns its root."""
    root = engine_home / "demo"
    model_file = root / DEMO_MODEL / "1" / "model.onnx"
    config_file = root / DEMO_MODEL / "config.pbtxt"
    if not model_file.is_file():
        make_mlp(model_file)
    if not config_file.is_file():
        config_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = config_file.with_suffix(".tmp")
        tmp.write_text(_CONFIG, encoding="utf-8")
        os.replace(tmp, config_file)
    return root
