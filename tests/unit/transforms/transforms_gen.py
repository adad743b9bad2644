"""Seeded generators of awkward raw columns and of specs for the parity tests."""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.transforms.spec import TransformSpec

EXTREMES = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, -1.0, -1.5, 1e-300, -1e-300, 1e300,
                     -1e300, 3.4e38, 1e-12, 5e-324])
WORDS = ["paris", "rome", "nyc", "tokyo", "", "é", "日本", "a b", "x" * 40, "zz"]
UNSEEN = ["never-seen", "PARIS", "日本語", " ", "\t", "paris "]


def numeric(rng: np.random.Generator, n: int, dtype: str, extremes: bool) -> np.ndarray:
    x = rng.normal(rng.uniform(-5, 5), rng.uniform(0.1, 10), n)
    if dtype == "int64":
        return np.round(x * 100).astype(np.int64)
    pick = rng.random(n) < 0.15
    x[pick] = rng.choice(EXTREMES if extremes else EXTREMES[:1], pick.sum())
    with np.errstate(over="ignore"):  # 1e300 -> inf in float32 on purpose
        return x.astype(dtype)


def strings(rng: np.random.Generator, n: int, unseen: bool) -> np.ndarray:
    pool = WORDS + (UNSEEN if unseen else [])
    out = np.array(pool, dtype=object)[rng.integers(0, len(pool), n)]
    if unseen:
        out[rng.random(n) < 0.05] = None
    return out


def frame(rng: np.random.Generator, n: int, spec_inputs: dict[str, str], unseen: bool) -> dict[str, Any]:
    """Training frames (unseen=False) have NaN but no extremes; serving frames have both."""
    return {
        name: strings(rng, n, unseen) if dtype == "string" else numeric(rng, n, dtype, unseen)
        for name, dtype in spec_inputs.items()
    }


INPUTS = {"a": "float64", "b": "float32", "c": "int64", "d": "float64", "s": "string",
          "t": "string", "u": "string"}


def template(rng: np.random.Generator) -> dict[str, Any]:
    """A random column config over INPUTS exercising every step and both encodings."""
    enc = lambda: str(rng.choice(["index", "onehot"]))
    scale = [{"op": "standardize"}, {"op": "min_max_scale"}, {"op": "robust_scale"}]
    impute = {"op": "impute", "strategy": str(rng.choice(["mean", "median", "most_frequent"])),
              "replace_inf": bool(rng.random() < 0.5)}
    return {
        "a": [impute, scale[int(rng.integers(0, 3))]],
        "a_log": {"column": "a", "steps": [{"op": "clip", "min": -1.0}, {"op": "log1p"}]},
        "b": [{"op": "clip", "lower_quantile": 0.05, "upper_quantile": 0.95},
              {"op": "bucketize", "num_quantiles": int(rng.integers(2, 6)), "encoding": enc()}],
        "c": [{"op": "impute", "strategy": "constant", "value": 1.5}, scale[int(rng.integers(0, 3))]],
        "d": [{"op": "log1p"}, {"op": "bucketize", "boundaries": [-1.0, 0.0, 0.5, 2.0],
                                "encoding": enc()}],
        "s": [{"op": "impute", "strategy": "most_frequent"},
              {"op": "vocabulary", "max_tokens": int(rng.integers(1, 8)),
               "num_oov_buckets": int(rng.integers(0, 4)), "seed": int(rng.integers(0, 2**32)),
               "encoding": enc()}],
        "t": [{"op": "hash", "num_buckets": int(rng.integers(1, 50)),
               "seed": int(rng.integers(0, 2**32)), "encoding": enc()}],
        "u": [{"op": "vocabulary", "min_frequency": 2, "num_oov_buckets": 0, "encoding": enc()}],
        "s_x_t": {"cross": ["s", "t", "u"][: int(rng.integers(2, 4))],
                  "num_buckets": int(rng.integers(1, 40)), "seed": int(rng.integers(0, 2**32)),
                  "encoding": enc()},
    }


def numeric_columns(spec: TransformSpec) -> np.ndarray:
    """Boolean mask of output columns that hold a scaled number (the rest hold indices)."""
    mask = np.zeros(spec.width, dtype=bool)
    for (_, start, _), feat in zip(spec.layout(), spec.features):
        if getattr(feat, "index_step", True) is None:
            mask[start] = True
    return mask
