"""The reference profile of training data: per-feature statistics for drift monitoring.

Made once at training time from the training split, stored with the registered version, and
compared later against live traffic (PSI / KS / chi-square per window). The profile is a plain
JSON-able dict (no NaN: missing statistics are ``None``), schema version 1::

    {
      "schema_version": 1,
      "row_count": 1500,
      "features": {
        "age": {
          "kind": "numeric", "dtype": "float64", "count": 1500,
          "nan_fraction": 0.0,             # NaN (or None) rows / row_count
          "inf_fraction": 0.0,             # +inf and -inf rows / row_count (optional)
          "mean": 42.1, "std": 11.8, "min": 18.0, "max": 90.0,   # over finite values
          "bin_edges": [18.0, 26.7, ..., 90.0],    # strictly increasing (see below)
          "bin_proportions": [0.1, 0.1, ...]       # len(bin_edges) - 1 values, sum 1
        },
        "region": {
          "kind": "categorical", "dtype": "string", "count": 1500,
          "missing_fraction": 0.0,          # None/NaN rows / row_count
          "distinct": 4,                    # distinct non-missing values seen
          "categories": ["north", "south", "east", "west"],   # top-k, most frequent first
          "proportions": [0.4, 0.3, 0.2, 0.1],                # over non-missing rows
          "other_proportion": 0.0           # non-missing rows outside the top-k
        }
      }
    }

Binning rule (numeric), which a monitor must apply identically (use :func:`assign_bins`):
the first and last bins are open-ended, so ``bin_edges[0]`` and ``bin_edges[-1]`` bound
nothing; interior edges belong to the bin on their right:
``bin = searchsorted(bin_edges[1:-1], x, side="right")``. NaN values are not binned; they are
counted by ``nan_fraction``. Infinities (+inf and -inf) are not binned either, as the core
counts them in a slot of their own: they are counted by ``inf_fraction`` (absent in profiles
made before it: read as 0). ``bin_proportions`` are the finite training values' shares under
that rule; ``mean``, ``std``, ``min`` and ``max`` are over the finite values (``None`` when
there are none), so the profile is strict JSON. How the edges are chosen, for B = ``bins``:

- at most B distinct values (a constant, a 0/1 flag, a small count): each value has its own
  bin, between an empty bin below the minimum and an empty bin above the maximum, so a value
  outside the training range, or a change in the values' shares, shows. Interior edges:
  ``lo`` of the smallest value, the midpoints between consecutive values, ``hi`` of the
  largest, where ``[lo, hi)`` holds just that value, whether a float64 or a float32 tensor
  serves it (``engine.monitoring.bins.value_span``: the value rounded down and up to float32
  numbers); the outer edges are the float64 numbers just outside those (nominal: their bins
  are open-ended);
- otherwise the 0, 1/B, ..., 1 quantiles, duplicates removed (``bin_edges[0]`` is ``min``,
  ``bin_edges[-1]`` is ``max``; a value below ``min`` counts in bin 0, above ``max`` in the
  last bin), except that a value holding at least 1/B of the values (the 0 of a zero-inflated
  feature) gets its own bin ``[lo, hi)`` as above, quantile edges inside it dropped.

Profiles made before this rule (one bin for a constant feature, ``bin_edges == [v, v]``) use
the same format and still load; the monitor reads ``[v, v]`` as a value bin of its own.

Categorical proportions are over non-missing rows; ties in frequency are broken by the value's
string order so the profile is deterministic.

An optional ``"outputs"`` section (:func:`profile_outputs`) profiles the model's predictions on
the training split with the same per-feature dicts, keyed by output name: a 1-D or ``[N, 1]``
output under its own name (numeric if floating point, else categorical, e.g. ``label``), each
column of a 2-D output as ``name[i]`` (e.g. ``probabilities[1]``).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine.monitoring.bins import value_span

__all__ = [
    "SCHEMA_VERSION",
    "assign_bins",
    "categorical_profile",
    "load_profile",
    "numeric_profile",
    "profile_array",
    "profile_frame",
    "profile_outputs",
    "save_profile",
]

SCHEMA_VERSION = 1


def profile_frame(
    frame: Any,
    numeric: Sequence[str],
    categorical: Sequence[str],
    *,
    bins: int = 10,
    top_k: int = 20,
) -> dict[str, Any]:
    """The profile of a pandas DataFrame's ``numeric`` and ``categorical`` columns."""
    missing = [c for c in [*numeric, *categorical] if c not in frame.columns]
    if missing:
        raise ValueError(f"columns {missing} are not in the frame; it has {list(frame.columns)}")
    features: dict[str, Any] = {}
    for name in numeric:
        features[name] = numeric_profile(
            frame[name].to_numpy(dtype=np.float64, na_value=np.nan),
            bins=bins,
            dtype=str(frame[name].dtype),
        )
    for name in categorical:
        features[name] = categorical_profile(frame[name].tolist(), top_k=top_k)
    return {"schema_version": SCHEMA_VERSION, "row_count": len(frame), "features": features}


def profile_array(
    array: np.ndarray, names: Sequence[str] | None = None, *, bins: int = 10
) -> dict[str, Any]:
    """The profile of a 2-D numeric array; columns are named ``names`` or ``x0, x1, ...``."""
    array = np.asarray(array)
    if array.ndim != 2:
        raise ValueError(f"profile_array needs a 2-D array; shape was {array.shape}")
    names = list(names) if names is not None else [f"x{i}" for i in range(array.shape[1])]
    if len(names) != array.shape[1]:
        raise ValueError(f"{len(names)} names for {array.shape[1]} columns")
    features = {
        name: numeric_profile(array[:, i].astype(np.float64), bins=bins, dtype=str(array.dtype))
        for i, name in enumerate(names)
    }
    return {
        "schema_version": SCHEMA_VERSION,
        "row_count": int(array.shape[0]),
        "features": features,
    }


def profile_outputs(outputs: Mapping[str, np.ndarray], *, bins: int = 10) -> dict[str, Any]:
    """The ``"outputs"`` section: per-output statistics of a model's predictions."""
    section: dict[str, Any] = {}
    for name, values in outputs.items():
        array = np.asarray(values)
        if array.ndim == 2 and array.shape[1] == 1:
            array = array[:, 0]
        if array.ndim == 1:
            if array.dtype.kind == "f":
                section[name] = numeric_profile(array, bins=bins, dtype=str(array.dtype))
            else:
                section[name] = categorical_profile(array.tolist())
        elif array.ndim == 2 and array.dtype.kind == "f":
            for i in range(array.shape[1]):
                section[f"{name}[{i}]"] = numeric_profile(
                    array[:, i], bins=bins, dtype=str(array.dtype)
                )
        else:
            raise ValueError(
                f"cannot profile output {name!r} of shape {array.shape} and dtype "
                f"{array.dtype}; expected 1-D, [N, 1] or 2-D floating point"
            )
    return section


def numeric_profile(
    values: np.ndarray, *, bins: int = 10, dtype: str = "float64"
) -> dict[str, Any]:
    """Statistics and quantile bins of one numeric column (see the module docstring)."""
    if bins < 1:
        raise ValueError(f"bins must be >= 1; was {bins}")
    values = np.asarray(values, dtype=np.float64)
    count = int(values.size)
    nan = int(np.isnan(values).sum())
    finite = values[np.isfinite(values)]
    profile: dict[str, Any] = {
        "kind": "numeric",
        "dtype": dtype,
        "count": count,
        "nan_fraction": _ratio(nan, count),
        "inf_fraction": _ratio(count - nan - finite.size, count),
        "mean": None,
        "std": None,
        "min": None,
        "max": None,
        "bin_edges": [],
        "bin_proportions": [],
    }
    if finite.size == 0:
        return profile
    edges = _bin_edges(finite, bins)
    counts = np.bincount(assign_bins(edges, finite), minlength=edges.size - 1)
    profile.update(
        {
            "mean": _num(finite.mean()),
            "std": _num(finite.std()),
            "min": _num(finite.min()),
            "max": _num(finite.max()),
            "bin_edges": [_num(e) for e in edges],
            "bin_proportions": [_num(c / finite.size) for c in counts],
        }
    )
    return profile


def _bin_edges(values: np.ndarray, bins: int) -> np.ndarray:
    """``bin_edges`` of finite ``values``, at least one (the rule is in the module
    docstring)."""
    distinct, counts = np.unique(values, return_counts=True)
    if distinct.size <= bins:
        return _discrete_edges(distinct)
    edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, bins + 1)))
    masses = distinct[counts * bins >= values.size]  # each holds at least 1/bins of the values
    if masses.size:
        return _point_mass_edges(edges, masses)
    return edges


def _discrete_edges(distinct: np.ndarray) -> np.ndarray:
    """Each of the ascending ``distinct`` values in a bin of its own, with an empty bin below
    and above."""
    values = distinct.tolist()
    spans = [value_span(v) for v in values]
    inner = [spans[0][0]]
    for i in range(len(values) - 1):
        u, v = values[i], values[i + 1]
        mid = u + (v - u) / 2
        if mid <= u:  # neighbouring float64 numbers
            mid = v
        hi_u, lo_v = spans[i][1], spans[i + 1][0]
        if hi_u <= lo_v:  # apart in a float32 tensor too: keep each rounded value in its bin
            mid = min(max(mid, hi_u), lo_v)
        inner.append(mid)
    inner.append(spans[-1][1])
    return _with_outer(np.array(inner), float(distinct[0]), float(distinct[-1]))


def _point_mass_edges(quantiles: np.ndarray, masses: np.ndarray) -> np.ndarray:
    """Unique ``quantiles`` (min and max outermost), with a bin of its own for each of
    ``masses``."""
    spans: list[list[float]] = []
    for lo, hi in sorted(value_span(m) for m in masses.tolist()):
        if spans and lo < spans[-1][1]:  # the same number in a float32 tensor: one bin
            spans[-1][1] = max(spans[-1][1], hi)
        else:
            spans.append([lo, hi])
    inner = {q for q in quantiles[1:-1].tolist() if not any(lo <= q < hi for lo, hi in spans)}
    inner.update(e for span in spans for e in span)
    return _with_outer(np.array(sorted(inner)), float(quantiles[0]), float(quantiles[-1]))


def _with_outer(inner: np.ndarray, low: float, high: float) -> np.ndarray:
    """``inner`` edges (finite ones) between outer edges: ``low`` / ``high`` when they lie
    outside them, else the float64 numbers just outside (the outer bins are open-ended)."""
    inner = inner[np.isfinite(inner)]
    if inner.size == 0:
        return np.array([low, high])
    tiny = float(np.finfo(np.float64).tiny)  # no subnormal edge: 0 -> -tiny, not -5e-324
    if not low < inner[0]:
        low = _finite_or(min(np.nextafter(inner[0], -np.inf), inner[0] - tiny), inner[0])
    if not high > inner[-1]:
        high = _finite_or(max(np.nextafter(inner[-1], np.inf), inner[-1] + tiny), inner[-1])
    return np.concatenate([[low], inner, [high]])


def _finite_or(value: float, fallback: float) -> float:
    return float(value) if math.isfinite(value) else float(fallback)


def categorical_profile(values: Iterable[Any], *, top_k: int = 20) -> dict[str, Any]:
    """Top-k categories with proportions, plus ``other_proportion`` (see the module docstring)."""
    if top_k < 1:
        raise ValueError(f"top_k must be >= 1; was {top_k}")
    values = list(values)
    present = [str(v) for v in values if not _is_missing(v)]
    counts = Counter(present)
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:top_k]
    total = len(present)
    top_count = sum(c for _, c in ranked)
    return {
        "kind": "categorical",
        "dtype": "string",
        "count": len(values),
        "missing_fraction": _ratio(len(values) - total, len(values)),
        "distinct": len(counts),
        "categories": [v for v, _ in ranked],
        "proportions": [_ratio(c, total) for _, c in ranked],
        "other_proportion": _ratio(total - top_count, total),
    }


def assign_bins(bin_edges: Sequence[float] | np.ndarray, values: np.ndarray) -> np.ndarray:
    """Bin index of each (non-NaN) value under a profile's edges; outer bins are open-ended."""
    edges = np.asarray(bin_edges, dtype=np.float64)
    if edges.size < 2:
        raise ValueError(f"bin_edges needs at least 2 values; was {list(edges)}")
    return np.searchsorted(edges[1:-1], np.asarray(values, dtype=np.float64), side="right")


def save_profile(profile: dict[str, Any], path: str | Path) -> Path:
    """Write the profile as JSON (NaN rejected, so the file is strict JSON)."""
    path = Path(path)
    path.write_text(json.dumps(profile, indent=2, allow_nan=False) + "\n")
    return path


def load_profile(path: str | Path) -> dict[str, Any]:
    profile: dict[str, Any] = json.loads(Path(path).read_text())
    if profile.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(
            f"profile {str(path)!r} has schema_version "
            f"{profile.get('schema_version')!r}; this build reads {SCHEMA_VERSION}"
        )
    return profile


def _is_missing(value: Any) -> bool:
    # None, float NaN (numpy NaN included) and pandas.NA (without importing pandas here).
    return (
        value is None
        or (isinstance(value, float) and math.isnan(value))
        or type(value).__name__ == "NAType"
    )


def _ratio(part: int, whole: int) -> float:
    return float(part) / whole if whole else 0.0


def _num(value: Any) -> float:
    return float(value)
