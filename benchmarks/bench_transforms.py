"""Feature transforms: the C++ core against scikit-learn and the exported ONNX graph, same run.

    .venv/bin/python benchmarks/bench_transforms.py            # 1,000,000 rows x 20 columns
    BENCH_TRANSFORMS_ROWS=100000 .venv/bin/python benchmarks/bench_transforms.py

20 raw columns: 12 numeric (NaN sprinkled in) and 8 categorical strings (20-40 categories, some
unseen at serving time, some empty). The same preprocessing three ways:

- engine: ``engine.transforms`` spec fitted on the data, applied by the C++ core from the same
  numpy columns (string conversion to Arrow buffers included in the time);
- scikit-learn: the equivalent ``ColumnTransformer`` (SimpleImputer + StandardScaler /
  RobustScaler / MinMaxScaler, log1p + clip, KBinsDiscretizer, OneHotEncoder, OrdinalEncoder),
  dense output;
- ONNX: the spec exported with ``engine.transforms.to_onnx`` and run by onnxruntime with the
  same thread count as the core and spinning off.

Prints rows/s of each and the ratios (targets: >= 10x scikit-learn, >= 2x the ONNX graph).
Not part of the test suite.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import onnxruntime as ort
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import (
    FunctionTransformer,
    KBinsDiscretizer,
    MinMaxScaler,
    OneHotEncoder,
    OrdinalEncoder,
    RobustScaler,
    StandardScaler,
)

import engine.transforms as T

ROWS = int(os.environ.get("BENCH_TRANSFORMS_ROWS", "1000000"))
THREADS = int(os.environ.get("BENCH_TRANSFORMS_THREADS", str(os.cpu_count() or 1)))
NUM = [f"n{i}" for i in range(12)]
CAT = [f"c{i}" for i in range(8)]


def make_data(rows: int, seed: int, unseen: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {}
    for i, name in enumerate(NUM):
        x = rng.lognormal(1.0, 1.0, rows) if i >= 8 else rng.normal(i, 1 + i, rows)
        x[rng.random(rows) < 0.02] = np.nan
        data[name] = x
    for i, name in enumerate(CAT):
        k = 20 + 3 * i
        pool = np.array([f"{name}_value_{j}" for j in range(k + (5 if unseen else 0))] + [""],
                        dtype=object)
        data[name] = pool[rng.integers(0, len(pool), rows)]
    return pd.DataFrame(data)


def engine_template() -> dict[str, Any]:
    t: dict[str, Any] = {}
    for i, name in enumerate(NUM):
        if i < 4:
            t[name] = [{"op": "impute", "strategy": "mean"}, {"op": "standardize"}]
        elif i < 6:
            t[name] = [{"op": "impute", "strategy": "median"}, {"op": "robust_scale"}]
        elif i < 8:
            t[name] = [{"op": "impute", "strategy": "median"}, {"op": "min_max_scale"}]
        elif i < 10:
            t[name] = [{"op": "impute", "strategy": "median"}, {"op": "log1p"},
                       {"op": "clip", "min": 0.0, "max": 5.0}]
        else:
            t[name] = [{"op": "impute", "strategy": "median"},
                       {"op": "bucketize", "num_quantiles": 4, "encoding": "onehot"}]
    for i, name in enumerate(CAT):
        encoding = "onehot" if i < 6 else "index"
        t[name] = [{"op": "impute", "strategy": "constant", "value": "missing"},
                   {"op": "vocabulary", "num_oov_buckets": 1, "encoding": encoding}]
    return t


def sklearn_transformer() -> ColumnTransformer:
    def imputed(*steps: Any, strategy: str = "median") -> Any:
        return make_pipeline(SimpleImputer(strategy=strategy), *steps)

    def cat() -> SimpleImputer:
        return SimpleImputer(missing_values="", strategy="constant", fill_value="missing")

    return ColumnTransformer([
        ("std", imputed(StandardScaler(), strategy="mean"), NUM[0:4]),
        ("robust", imputed(RobustScaler()), NUM[4:6]),
        ("minmax", imputed(MinMaxScaler()), NUM[6:8]),
        ("log", imputed(FunctionTransformer(np.log1p), FunctionTransformer(np.clip, kw_args={
            "a_min": 0.0, "a_max": 5.0})), NUM[8:10]),
        ("bins", imputed(KBinsDiscretizer(n_bins=4, encode="onehot-dense", strategy="quantile",
                                          quantile_method="linear")), NUM[10:12]),
        ("onehot", make_pipeline(cat(), OneHotEncoder(handle_unknown="ignore",
                                                      sparse_output=False)), CAT[0:6]),
        ("ordinal", make_pipeline(cat(), OrdinalEncoder(handle_unknown="use_encoded_value",
                                                        unknown_value=-1)), CAT[6:8]),
    ])


def best_of(n: int, fn: Callable[[], Any]) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(n):
        start = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - start)
    return best, out


def main() -> None:
    train = make_data(200_000, seed=1, unseen=False)
    serve = make_data(ROWS, seed=2, unseen=True)
    columns = {name: serve[name].to_numpy() for name in serve.columns}

    spec = T.fit(train, engine_template())
    native = T.compile_native(spec)
    sk = sklearn_transformer().fit(train)
    options = ort.SessionOptions()
    options.intra_op_num_threads = THREADS
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(T.to_onnx(spec).SerializeToString(), options,
                                providers=["CPUExecutionProvider"])

    repeats = 3
    t_engine, x_engine = best_of(repeats, lambda: native.apply(columns, max_threads=THREADS))
    t_onnx, (x_onnx,) = best_of(repeats, lambda: sess.run(None, columns))
    t_sklearn, x_sklearn = best_of(1, lambda: sk.transform(serve))

    assert np.array_equal(x_engine, T.apply_reference(spec, columns), equal_nan=True)
    print(f"rows={ROWS:,} columns=20 (12 numeric, 8 string) width={spec.width} threads={THREADS}")
    print(f"  sklearn width={x_sklearn.shape[1]} (the spec adds OOV and NaN buckets; same work)")
    for name, t in [("engine (C++ core)", t_engine), ("onnxruntime graph", t_onnx),
                    ("scikit-learn", t_sklearn)]:
        print(f"  {name:<20} {t * 1e3:9.1f} ms  {ROWS / t:14,.0f} rows/s")
    print(f"  engine / scikit-learn = {t_sklearn / t_engine:6.1f}x   (target >= 10x)")
    print(f"  engine / onnx graph   = {t_onnx / t_engine:6.1f}x   (target >= 2x)")
    diff = np.nanmax(np.abs(x_onnx - x_engine))
    print(f"  max |onnx - engine| = {diff:.3g}")


if __name__ == "__main__":
    main()
