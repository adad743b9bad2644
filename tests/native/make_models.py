"""Write the ONNX models the C++ tests (csrc/tests) load into the folder given as argv[1]."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import factories
from onnx import TensorProto


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    factories.elementwise(out / "relu.onnx", TensorProto.FLOAT, "Relu")
    factories.poison_gather(out / "poison.onnx")
    factories.slow_mlp(out / "slow.onnx")  # x [N, 512]: tens of ms for 256 rows
    factories.fixed_shape(out / "fixed.onnx")  # x [2, 3]: no batch dimension


if __name__ == "__main__":
    main(Path(sys.argv[1]))
