"""Drift bins: the contract with the native core, and its exact numpy reference.

The monitor hands the core a list of feature dicts with ``core.set_drift_bins(features)``;
the core then counts every batch into those bins and ``core.drift_counts()`` returns
``{feature name: [int, ...]}``, cumulative since ``set_drift_bins``. ``set_drift_bins([])``
removes the bins: the core counts nothing and ``drift_counts()`` is ``{}``. One feature dict::

    {"name": "age",          # unique feature name
     "tensor": "x",          # input or output tensor it reads
     "column": 3,            # column along dim 1 of a 2-D tensor; -1: every element
     "kind": "numeric",      # or "categorical"
     "edges": [18.0, 30.5],  # numeric: strictly ascending finite inner edges e_0 < ... < e_{k-1}
     "categories": []}       # categorical: distinct non-empty strings

Both ``edges`` and ``categories`` are always present; the one the kind does not use is empty.

Slot layout of the counts (this module's :func:`bin_counts` is the oracle the core's tests
compare against, so it is the definition):

numeric, ``k = len(edges)``, ``k + 3`` slots
    ``0 .. k``: value bins. Bin 0 holds ``v < e_0``; bin ``i`` holds ``e_{i-1} <= v < e_i``;
    bin ``k`` holds ``v >= e_{k-1}`` (with no edges, bin 0 holds every finite value).
    ``k + 1``: NaN. ``k + 2``: +inf and -inf.
    Values are compared as float64 (a float32 or integer element is converted to float64
    first; edges are float64). A bin meant to hold one training value exactly, whatever the
    served tensor's type, is :func:`value_span` of it.

categorical, ``m = len(categories)``, ``m + 2`` slots
    ``0 .. m-1``: one per category, in order. ``m``: "other" (a present value that is not a
    category). ``m + 1``: "missing" (the empty string, or NaN in a numeric tensor).
    Elements are compared as strings (:func:`canonical_category`): UTF-8 bytes decode to
    str. A numeric element is converted to float64 first (booleans are 1 and 0); an integral
    value below 9.2e18 in magnitude prints as that integer (``3.0`` -> ``3``, ``True`` ->
    ``1``), infinities as ``inf`` / ``-inf``, any other value as the shortest string that
    round-trips the float64 value (``0.25``, Python's ``repr``).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Any, Literal, Protocol

import numpy as np

from engine.errors import InvalidConfigError

__all__ = [
    "CountsSource",
    "FeatureBins",
    "NumpyDriftCounter",
    "bin_counts",
    "canonical_category",
    "parse_features",
    "select_column",
    "slot_labels",
    "value_span",
]

Kind = Literal["numeric", "categorical"]
_TINY = float(np.finfo(np.float64).tiny)  # the smallest normal float64


@dataclass(frozen=True)
class FeatureBins:
    """One monitored feature: which tensor column it reads and how it is binned."""

    name: str
    tensor: str
    column: int
    kind: Kind
    edges: tuple[float, ...] = ()
    categories: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise InvalidConfigError(f"feature name must be a non-empty string; was {self.name!r}")
        where = f"feature {self.name!r}"
        if not isinstance(self.tensor, str) or not self.tensor:
            raise InvalidConfigError(
                f"{where}: tensor must be a non-empty string; was {self.tensor!r}"
            )
        if isinstance(self.column, bool) or not isinstance(self.column, int) or self.column < -1:
            raise InvalidConfigError(
                f"{where}: column must be an integer >= -1; was {self.column!r}"
            )
        if self.kind == "numeric":
            if self.categories:
                raise InvalidConfigError(
                    f"{where}: a numeric feature has no categories; was {list(self.categories)}"
                )
            edges = self.edges
            if any(not math.isfinite(e) for e in edges):
                raise InvalidConfigError(f"{where}: edges must be finite; was {list(edges)}")
            if any(b <= a for a, b in pairwise(edges)):
                raise InvalidConfigError(
                    f"{where}: edges must be strictly ascending; was {list(edges)}"
                )
        elif self.kind == "categorical":
            if self.edges:
                raise InvalidConfigError(
                    f"{where}: a categorical feature has no edges; was {list(self.edges)}"
                )
            cats = self.categories
            if not cats:
                raise InvalidConfigError(f"{where}: a categorical feature needs categories")
            if any(not isinstance(c, str) or not c for c in cats):
                raise InvalidConfigError(
                    f"{where}: categories must be non-empty strings (the "
                    f"empty string counts as missing); was {list(cats)}"
                )
            if len(set(cats)) != len(cats):
                raise InvalidConfigError(f"{where}: categories must be distinct; was {list(cats)}")
        else:
            raise InvalidConfigError(
                f"{where}: kind must be 'numeric' or 'categorical'; was {self.kind!r}"
            )

    @property
    def slot_count(self) -> int:
        if self.kind == "numeric":
            return len(self.edges) + 3
        return len(self.categories) + 2

    @property
    def value_slots(self) -> int:
        """Slots holding ordered values (numeric value bins); 0 for a categorical feature."""
        return len(self.edges) + 1 if self.kind == "numeric" else 0

    def to_dict(self) -> dict[str, Any]:
        """The dict ``core.set_drift_bins`` takes (plain Python types only)."""
        return {
            "name": self.name,
            "tensor": self.tensor,
            "column": self.column,
            "kind": self.kind,
            "edges": [float(e) for e in self.edges],
            "categories": list(self.categories),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureBins:
        known = {"name", "tensor", "column", "kind", "edges", "categories"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidConfigError(f"unknown feature fields {unknown}; known: {sorted(known)}")
        try:
            edges = tuple(float(e) for e in data.get("edges") or ())
        except (TypeError, ValueError):
            raise InvalidConfigError(
                f"feature {data.get('name')!r}: edges must be numbers; was {data.get('edges')!r}"
            ) from None
        # Types are checked by __post_init__, with the bad value in the message.
        fields: dict[str, Any] = {k: data.get(k) for k in ("name", "tensor", "kind")}
        return cls(
            **fields,
            column=data.get("column", -1),
            edges=edges,
            categories=tuple(data.get("categories") or ()),
        )


def parse_features(features: Iterable[FeatureBins | Mapping[str, Any]]) -> tuple[FeatureBins, ...]:
    """Validate a feature list (dicts or :class:`FeatureBins`); names must be unique."""
    parsed = tuple(f if isinstance(f, FeatureBins) else FeatureBins.from_dict(f) for f in features)
    seen: set[str] = set()
    for f in parsed:
        if f.name in seen:
            raise InvalidConfigError(f"feature names must be unique; {f.name!r} appears twice")
        seen.add(f.name)
    return parsed


def value_span(value: float) -> tuple[float, float]:
    """The edges ``(lo, hi)`` of a bin ``[lo, hi)`` holding ``value`` as any tensor serves it.

    The core compares a float32 element as its float64 value, and float32 0.1 is not float64
    0.1. So ``lo`` is ``value`` rounded down to a float32 number and ``hi`` the float64 number
    just above ``value`` rounded up to a float32 number: the bin holds the value as a float64
    and as a float32 element, and nothing farther from it than the float32 numbers on either
    side (2**-23 relative at most; for a value that is a float32 number, an integer below
    2**24 say, just ``[value, next float64)``). ``hi`` of 0 is the smallest normal float64
    (no edge is subnormal). Beyond float32's range, ``[value, next float64)``. A float16
    tensor rounds more coarsely (up to 2**-11 relative) and may put the value outside.
    """
    v = float(value)
    with np.errstate(over="ignore"):
        near = np.float32(v)
    lo = top = v
    if np.isfinite(near):
        down = near if float(near) <= v else np.nextafter(near, np.float32(-np.inf))
        up = near if float(near) >= v else np.nextafter(near, np.float32(np.inf))
        if np.isfinite(down) and np.isfinite(up):
            lo, top = float(down), float(up)
    hi = max(float(np.nextafter(top, math.inf)), top + _TINY)
    return lo, hi


def _closes_span(edge: float) -> bool:
    """Whether ``edge`` is the ``hi`` of a :func:`value_span` (just above a float32 number)."""
    if edge == _TINY:
        return True
    below = float(np.nextafter(edge, -math.inf))
    with np.errstate(over="ignore"):
        return float(np.float32(below)) == below


def slot_labels(feature: FeatureBins) -> list[str]:
    """Human-readable names of a feature's slots, in slot order (for reports and logs).

    Edges print with 4 significant digits. The ``hi`` edge of a :func:`value_span` closes the
    bin holding that value: ``[0.5,1]`` then ``>1``; a bin holding one value prints as ``=5``.
    """
    if feature.kind == "categorical":
        return [*feature.categories, "(other)", "(missing)"]
    if not feature.edges:
        return ["(all)", "NaN", "±inf"]
    text = ["0" if e == _TINY else f"{e:.4g}" for e in feature.edges]
    shut = [_closes_span(e) for e in feature.edges]
    labels = [f"<={text[0]}" if shut[0] else f"<{text[0]}"]
    for i in range(1, len(text)):
        if text[i - 1] == text[i] and shut[i] and not shut[i - 1]:
            labels.append(f"={text[i]}")
        else:
            left = "(" if shut[i - 1] else "["
            right = "]" if shut[i] else ")"
            labels.append(f"{left}{text[i - 1]},{text[i]}{right}")
    labels += [f">{text[-1]}" if shut[-1] else f">={text[-1]}", "NaN", "±inf"]
    return labels


def canonical_category(value: Any) -> str | None:
    """The string a categorical element is compared as; ``None`` when it counts as missing."""
    if value is None:
        return None
    if isinstance(value, (bytes, bytearray, np.bytes_)):
        value = bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, str):
        return value or None
    if isinstance(value, (bool, np.bool_, int, np.integer, float, np.floating)):
        number = float(value)
        if math.isnan(number):
            return None
        if math.isinf(number):
            return "inf" if number > 0 else "-inf"
        if number.is_integer() and abs(number) < 9.2e18:
            return str(int(number))
        return repr(number)
    return str(value) or None


def select_column(values: Any, column: int, *, where: str = "tensor") -> np.ndarray:
    """The values a feature reads: ``array[:, column]``, or every element for column -1."""
    array: np.ndarray = np.asarray(values)
    if column == -1:
        return array.reshape(-1)
    if array.ndim != 2:
        raise InvalidConfigError(
            f"{where}: column {column} needs a 2-D tensor; shape was {list(array.shape)}"
        )
    if column >= array.shape[1]:
        raise InvalidConfigError(
            f"{where}: column {column} is out of range for shape {list(array.shape)}"
        )
    return array[:, column]


def bin_counts(values: Any, feature: FeatureBins | Mapping[str, Any]) -> np.ndarray:
    """Counts of 1-D ``values`` in ``feature``'s slots (int64, layout in the module docstring)."""
    if not isinstance(feature, FeatureBins):
        feature = FeatureBins.from_dict(feature)
    array = np.asarray(values)
    if array.ndim != 1:
        array = array.reshape(-1)
    if feature.kind == "numeric":
        return _numeric_counts(array, feature)
    return _categorical_counts(array, feature)


def _numeric_counts(array: np.ndarray, feature: FeatureBins) -> np.ndarray:
    if array.dtype.kind not in "biuf":
        raise InvalidConfigError(
            f"feature {feature.name!r} is numeric but its values have dtype {array.dtype}"
        )
    v = array.astype(np.float64, copy=False)
    nan = np.isnan(v)
    inf = np.isinf(v)
    finite = v[~(nan | inf)]
    k = len(feature.edges)
    bins = np.searchsorted(np.asarray(feature.edges, dtype=np.float64), finite, side="right")
    counts = np.zeros(k + 3, dtype=np.int64)
    counts[: k + 1] = np.bincount(bins, minlength=k + 1)
    counts[k + 1] = int(nan.sum())
    counts[k + 2] = int(inf.sum())
    return counts


def _categorical_counts(array: np.ndarray, feature: FeatureBins) -> np.ndarray:
    m = len(feature.categories)
    index = {c: i for i, c in enumerate(feature.categories)}
    counts = np.zeros(m + 2, dtype=np.int64)
    if array.size == 0:
        return counts
    if array.dtype.kind in "biuf":
        # Few distinct values in a numeric-coded categorical: map the distinct ones only.
        uniques, inverse = np.unique(array, return_inverse=True)
        slots = np.array(
            [_slot(canonical_category(u), index, m) for u in uniques.tolist()], dtype=np.int64
        )
        if array.dtype.kind == "f":
            # np.unique keeps every NaN apart; they all map to "missing" anyway.
            slots[np.isnan(uniques)] = m + 1
        counts += np.bincount(slots[inverse.reshape(-1)], minlength=m + 2)
        return counts
    cache: dict[Any, int] = {}
    for value in array.tolist():
        try:
            slot = cache.get(value)
        except TypeError:  # unhashable element
            slot = None
        if slot is None:
            slot = _slot(canonical_category(value), index, m)
            try:
                cache[value] = slot
            except TypeError:
                pass
        counts[slot] += 1
    return counts


def _slot(category: str | None, index: Mapping[str, int], m: int) -> int:
    if category is None:
        return m + 1
    return index.get(category, m)


class CountsSource(Protocol):
    """Where a monitor reads cumulative counts: the core's Model, or :class:`NumpyDriftCounter`."""

    def set_drift_bins(self, features: list[dict[str, Any]]) -> None: ...

    def drift_counts(self) -> Mapping[str, Sequence[int]]: ...


class NumpyDriftCounter:
    """The core's drift counting done in numpy: same calls, same layout.

    For in-process use without the core's counters (feed it with :meth:`observe`) and as the
    oracle in tests. Thread-safe; :meth:`observe` takes a lock, so it is not for a hot path.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._features: tuple[FeatureBins, ...] = ()
        self._counts: dict[str, np.ndarray] = {}
        self._rows = 0

    def set_drift_bins(self, features: Iterable[FeatureBins | Mapping[str, Any]]) -> None:
        """Replace the bins and reset every count to zero."""
        parsed = parse_features(features)
        with self._lock:
            self._features = parsed
            self._counts = {f.name: np.zeros(f.slot_count, dtype=np.int64) for f in parsed}

    def observe(self, tensors: Mapping[str, Any]) -> None:
        """Count one batch: ``tensors`` maps input and output names to arrays (N rows each)."""
        with self._lock:
            first = next(iter(tensors.values()), None)
            self._rows += int(np.shape(first)[0]) if first is not None and np.ndim(first) else 0
            for f in self._features:
                if f.tensor in tensors:
                    values = select_column(tensors[f.tensor], f.column, where=f"feature {f.name!r}")
                    self._counts[f.name] += bin_counts(values, f)

    def drift_counts(self) -> dict[str, list[int]]:
        with self._lock:
            return {name: counts.tolist() for name, counts in self._counts.items()}

    def stats(self) -> dict[str, int]:
        """Like the core's ``stats()``: ``inferred_rows``, the rows observed so far."""
        with self._lock:
            return {"inferred_rows": self._rows}
