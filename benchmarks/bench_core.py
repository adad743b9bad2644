"""Issue: native core. engine's Model.predict against onnxruntime.InferenceSession.run in the
same process and run, on the MLP 32 -> 256 -> 256 -> 1, same thread settings (1 intra-op
thread, no spinning). Targets: batch 1 >= 1.2x ORT's calls/s; batch 256 within 3%."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from _timing import calls_per_second

import engine


def ort_session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize(("rows", "target"), [(1, 1.20), (256, 0.97)])
def test_predict_vs_onnxruntime(benchmark, mlp_path: Path, rows: int, target: float) -> None:
    x = np.random.default_rng(0).standard_normal((rows, 32)).astype(np.float32)
    model = engine.load(mlp_path, config=engine.ModelConfig(intra_op_threads=1,
                                                            max_batch_size=256))
    session = ort_session(mlp_path)
    feeds = {"x": x}
    np.testing.assert_allclose(model.predict(x)["y"], session.run(None, feeds)[0], rtol=1e-5)
    calls = 3000 if rows == 1 else 300
    cmp = calls_per_second(lambda: model.predict(x), lambda: session.run(None, feeds),
                           calls=calls)
    benchmark.extra_info.update(ours_per_s=cmp.ours_per_s, ort_per_s=cmp.base_per_s,
                                ratio=cmp.ratio)
    benchmark(model.predict, x)
    verdict = "meets" if cmp.ratio >= target else "MISSES"
    print(f"\n[bench_core] batch {rows}: engine {cmp.ours_per_s:,.0f}/s, onnxruntime "
          f"{cmp.base_per_s:,.0f}/s, ratio {cmp.ratio:.3f} ({verdict} target {target:.2f}x)")
    model.close()
