"""Reference profile -> drift bins and reference proportions, in the core's slot layout.

The profile is the one ``engine.training.profile`` writes (schema version 1; see that module's
docstring): ``profile["features"]`` maps a feature name to its numeric statistics
(``bin_edges`` with the outer min/max included, ``bin_proportions`` over finite rows,
``nan_fraction``, ``inf_fraction``) or categorical ones (``categories``, ``proportions`` and
``other_proportion`` over non-missing rows, ``missing_fraction``).

The monitor also reads an optional ``profile["outputs"]``: the same per-feature dicts,
profiled from the model's predictions on the training (or validation) split and keyed like
input features. Without it, outputs are not monitored for drift.

Which tensor column a profile feature reads, in order of precedence:

1. ``columns={"age": ("x", 3)}`` given by the caller;
2. a tensor of that name (1-D or ``[N, 1]``: column -1, every element);
3. a name ``tensor[i]``: column ``i`` of that 2-D tensor;
4. the remaining features, in profile order, are the columns of the one remaining 2-D tensor
   of the signature whose width matches (``profile_array`` of one wide input).

Reference proportions per slot (summing to 1):
numeric ``bin_proportions * (1 - nan_fraction - inf_fraction)``, then ``nan_fraction``,
then ``inf_fraction`` for +-inf (0 when absent: older profiles binned infinities in the outer
bins); categorical ``proportions * (1 -
missing_fraction)``, then ``other_proportion * (1 - missing_fraction)``, then
``missing_fraction``. The profile's interior edges become the core's ``edges``
(``bin_edges[1:-1]``) and its binning rule (``searchsorted(..., side="right")``) is the
core's. A constant feature in a profile made before value bins (``bin_edges == [v, v]``, one
bin) is read as the profile builder now writes it: ``v`` in a bin of its own
(:func:`~engine.monitoring.bins.value_span`) between empty bins below and above, so a
change of the value shows. A categorical feature without categories (no value present in
training) is left out, with a warning. A category that is the empty string is folded into
"missing"; for a numeric tensor, category strings are rewritten to the string the core names
that value by when the tensor holds it, and duplicates merged: the number is first rounded to
the tensor's precision (float32 or float16), then written by
:func:`~engine.monitoring.bins.canonical_category` ("3.0" -> "3"; "0.1" on a float32 tensor
-> "0.10000000149011612", the float64 value of float32 0.1, which the core compares against).
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.errors import InvalidConfigError
from engine.monitoring.bins import FeatureBins, canonical_category, parse_features, value_span
from engine.monitoring.profile_schema import check_profile
from engine.signature import TensorSpec

__all__ = ["DriftReference", "drift_reference", "features_from_profile", "reference_proportions"]

_log = logging.getLogger(__name__)
# Where the registry keeps a version's training profile (engine.training.examples sets it).
PROFILE_PARAM = "reference_profile"
_INDEXED = re.compile(r"^(?P<tensor>.+)\[(?P<column>\d+)\]$")


@dataclass(frozen=True)
class DriftReference:
    """What a monitor compares against: the features' bins and their reference proportions."""

    features: tuple[FeatureBins, ...]
    proportions: Mapping[str, np.ndarray] = field(compare=False)

    def __post_init__(self) -> None:
        for f in self.features:
            p = self.proportions.get(f.name)
            if p is None or len(p) != f.slot_count:
                raise InvalidConfigError(
                    f"feature {f.name!r} has {f.slot_count} slots but its reference proportions "
                    f"are {None if p is None else list(p)}"
                )

    def core_features(self) -> list[dict[str, Any]]:
        """The list ``core.set_drift_bins`` takes."""
        return [f.to_dict() for f in self.features]

    @classmethod
    def from_features(
        cls,
        features: Iterable[FeatureBins | Mapping[str, Any]],
        proportions: Mapping[str, Sequence[float]],
    ) -> DriftReference:
        parsed = parse_features(features)
        return cls(
            parsed, {f.name: _normalised(proportions.get(f.name, ()), f.slot_count) for f in parsed}
        )


def drift_reference(
    profile: Mapping[str, Any],
    signature: Any,
    *,
    columns: Mapping[str, tuple[str, int]] | None = None,
) -> DriftReference:
    """Bins and reference proportions of every profiled input (and output) feature."""
    features = parse_features(features_from_profile(profile, signature, columns=columns))
    return DriftReference(
        features,
        {
            name: np.asarray(p, dtype=np.float64)
            for name, p in reference_proportions(profile, features).items()
        },
    )


def drift_reference_for_version(
    version: Any, *, columns: Mapping[str, tuple[str, int]] | None = None
) -> DriftReference:
    """The reference of a registry ``ModelVersion``: its ``params["reference_profile"]``
    (stored by ``engine train``) against its signature."""
    profile = (getattr(version, "params", None) or {}).get(PROFILE_PARAM)
    if not isinstance(profile, Mapping):
        raise InvalidConfigError(
            f"{getattr(version, 'name', '?')}:{getattr(version, 'version', '?')} has no "
            f"params[{PROFILE_PARAM!r}]; register it with the training profile to monitor drift"
        )
    return drift_reference(profile, version, columns=columns)


def features_from_profile(
    profile: Mapping[str, Any],
    signature: Any,
    *,
    columns: Mapping[str, tuple[str, int]] | None = None,
) -> list[dict[str, Any]]:
    """The ``set_drift_bins`` list for ``profile`` on a model with this ``signature``.

    ``signature``: anything with ``.inputs`` and ``.outputs`` (a Model, a registry
    ModelVersion) or a sequence of input specs (TensorSpec, ``{"name","dtype","shape"}`` or
    ``(name, dtype, shape)``).
    """
    check_profile(profile)  # malformed: InvalidConfigError naming the field
    inputs, outputs = _signature(signature)
    out: list[dict[str, Any]] = []
    for section, specs in (("features", inputs), ("outputs", outputs)):
        entries = profile.get(section) or {}
        if not isinstance(entries, Mapping):
            raise InvalidConfigError(
                f"profile[{section!r}] must be a mapping of feature name to "
                f"statistics; was {type(entries).__name__}"
            )
        placed = _place(list(entries), specs, columns or {}, section)
        for name, stats in entries.items():
            tensor, column = placed[name]
            if stats.get("kind") == "categorical" and not _categories(stats, None)[0]:
                _log.warning(
                    "profile feature %r has no categories (no present value in training); "
                    "it is not monitored for drift",
                    name,
                )
                continue
            out.append(_feature(name, stats, tensor, column, specs[tensor]).to_dict())
    return out


def reference_proportions(
    profile: Mapping[str, Any], features: Iterable[FeatureBins | Mapping[str, Any]]
) -> dict[str, list[float]]:
    """Reference proportions of each feature's slots (layout of ``bins.bin_counts``)."""
    check_profile(profile)
    stats_by_name: dict[str, Mapping[str, Any]] = {}
    for section in ("features", "outputs"):
        stats_by_name.update(profile.get(section) or {})
    result: dict[str, list[float]] = {}
    for f in parse_features(features):
        stats = stats_by_name.get(f.name)
        if stats is None:
            raise InvalidConfigError(f"feature {f.name!r} is not in the profile")
        if f.kind == "numeric":
            props = _numeric_reference(stats, f)
        else:
            props = _categorical_reference(stats, f)
        result[f.name] = _normalised(props, f.slot_count).tolist()
    return result


# --- placing features on tensor columns ---------------------------------------------------


def _signature(signature: Any) -> tuple[dict[str, TensorSpec], dict[str, TensorSpec]]:
    if hasattr(signature, "inputs"):
        inputs, outputs = signature.inputs, getattr(signature, "outputs", ())
    else:
        inputs, outputs = signature, ()
    return ({s.name: s for s in map(_spec, inputs)}, {s.name: s for s in map(_spec, outputs)})


def _spec(item: Any) -> TensorSpec:
    if isinstance(item, TensorSpec):
        return item
    if isinstance(item, Mapping):
        return TensorSpec.from_dict(dict(item))
    name, dtype, shape = item
    return TensorSpec(str(name), str(dtype), tuple(int(d) for d in shape))


def _place(
    names: list[str],
    specs: Mapping[str, TensorSpec],
    columns: Mapping[str, tuple[str, int]],
    section: str,
) -> dict[str, tuple[str, int]]:
    placed: dict[str, tuple[str, int]] = {}
    for name in names:
        if name in columns:
            tensor, column = columns[name]
            if tensor not in specs:
                raise InvalidConfigError(
                    f"columns[{name!r}] names tensor {tensor!r}, which is not among {sorted(specs)}"
                )
            placed[name] = (tensor, int(column))
        elif name in specs:
            spec = specs[name]
            if len(spec.shape) == 2 and spec.shape[1] not in (1, -1):
                raise InvalidConfigError(
                    f"profile feature {name!r} is the whole tensor {name!r} of shape "
                    f"{list(spec.shape)}; name its columns '{name}[i]' or pass columns="
                )
            placed[name] = (name, -1)
        elif (match := _INDEXED.match(name)) and match["tensor"] in specs:
            placed[name] = (match["tensor"], int(match["column"]))
    rest = [n for n in names if n not in placed]
    if rest:
        used = {t for t, _ in placed.values()}
        wide = [
            s
            for s in specs.values()
            if s.name not in used and len(s.shape) == 2 and s.shape[1] in (len(rest), -1)
        ]
        if len(wide) != 1:
            raise InvalidConfigError(
                f"cannot tell which tensor columns the profile {section} {rest} are: the "
                f"model's tensors are {[(s.name, list(s.shape)) for s in specs.values()]}; "
                "pass columns={feature: (tensor, column)}"
            )
        placed.update({n: (wide[0].name, i) for i, n in enumerate(rest)})
    for name, (tensor, column) in placed.items():
        shape = specs[tensor].shape
        if column >= 0 and len(shape) == 2 and shape[1] != -1 and column >= shape[1]:
            raise InvalidConfigError(
                f"feature {name!r}: column {column} is out of range for "
                f"tensor {tensor!r} of shape {list(shape)}"
            )
    return placed


# --- one feature --------------------------------------------------------------------------


def _feature(
    name: str, stats: Mapping[str, Any], tensor: str, column: int, spec: TensorSpec
) -> FeatureBins:
    kind = stats.get("kind")
    if kind == "numeric":
        if spec.dtype == "string":
            raise InvalidConfigError(
                f"profile feature {name!r} is numeric but tensor {tensor!r} holds strings"
            )
        edges, _ = _numeric_bins(stats, name)
        return FeatureBins(name, tensor, column, "numeric", edges=tuple(edges))
    if kind == "categorical":
        categories, _ = _categories(stats, None if spec.dtype == "string" else spec.dtype)
        return FeatureBins(name, tensor, column, "categorical", categories=tuple(categories))
    raise InvalidConfigError(
        f"profile feature {name!r} has kind {kind!r}; expected 'numeric' or 'categorical'"
    )


def _numeric_bins(stats: Mapping[str, Any], name: str) -> tuple[list[float], list[float]]:
    """Inner edges and per-bin proportions over non-NaN rows, cleaned so edges are strict."""
    outer = [float(e) for e in stats.get("bin_edges") or []]
    props = [float(p) for p in stats.get("bin_proportions") or []]
    if not outer:
        return [], [0.0]
    if len(props) != len(outer) - 1:
        raise InvalidConfigError(
            f"profile feature {name!r}: {len(outer)} bin_edges need "
            f"{len(outer) - 1} bin_proportions; got {len(props)}"
        )
    if len(outer) == 2 and outer[0] == outer[1] and math.isfinite(outer[0]):
        # A constant feature's single bin (profiles made before value bins): v on its own.
        return list(value_span(outer[0])), [0.0, props[0], 0.0]
    edges = outer[1:-1]
    # Merge bins across an edge that is not finite or not above its left neighbour.
    i = 0
    while i < len(edges):
        if not math.isfinite(edges[i]) or (i > 0 and edges[i] <= edges[i - 1]):
            props[i] += props.pop(i + 1)
            edges.pop(i)
        else:
            i += 1
    return edges, props


# A float tensor narrower than float64 holds a category's number rounded to its precision.
_NARROW_FLOATS: dict[str, type[np.floating[Any]]] = {"float32": np.float32, "float16": np.float16}


def _categories(
    stats: Mapping[str, Any], tensor_dtype: str | None
) -> tuple[list[str], dict[str | None, float]]:
    """Categories in profile order and proportion by category (None: folded into missing).

    ``tensor_dtype``: the dtype of the numeric tensor the feature reads, whose values name the
    categories; None for a string tensor (categories are compared as written).
    """
    names = [str(c) for c in stats.get("categories") or []]
    props = [float(p) for p in stats.get("proportions") or []]
    if len(props) != len(names):
        raise InvalidConfigError(
            f"profile categories {names} and proportions {props} differ in length"
        )
    order: list[str] = []
    share: dict[str | None, float] = {}
    for raw, p in zip(names, props):
        key: str | None = raw or None
        if tensor_dtype is not None and key is not None:
            key = canonical_category(_as_served(_maybe_number(key), tensor_dtype))
        if key is not None and key not in share:
            order.append(key)
        share[key] = share.get(key, 0.0) + p
    return order, share


def _maybe_number(text: str) -> Any:
    if text in ("True", "False"):  # a bool column's str(); the core counts bools as 1 / 0
        return text == "True"
    try:
        return float(text)
    except ValueError:
        return text


def _as_served(value: Any, tensor_dtype: str) -> Any:
    """``value`` as an element of a ``tensor_dtype`` tensor holds it (rounded to float32 or
    float16; other values unchanged)."""
    narrow = _NARROW_FLOATS.get(tensor_dtype)
    if narrow is None or not isinstance(value, float):
        return value
    with np.errstate(over="ignore"):  # beyond the type's range: +-inf, as the tensor holds it
        return float(narrow(value))


def _numeric_reference(stats: Mapping[str, Any], f: FeatureBins) -> list[float]:
    edges, props = _numeric_bins(stats, f.name)
    if tuple(edges) != f.edges:
        raise InvalidConfigError(
            f"feature {f.name!r}: the profile's edges {edges} are not the feature's {list(f.edges)}"
        )
    nan = _fraction(stats.get("nan_fraction"))
    inf = min(_fraction(stats.get("inf_fraction")), 1.0 - nan)
    return [p * (1.0 - nan - inf) for p in props] + [nan, inf]


def _categorical_reference(stats: Mapping[str, Any], f: FeatureBins) -> list[float]:
    # The feature's categories tell whether (and at which precision) they were rewritten for
    # a numeric tensor.
    for tensor_dtype in (None, "float64", "float32", "float16"):
        order, share = _categories(stats, tensor_dtype)
        if tuple(order) == f.categories:
            break
    else:
        raise InvalidConfigError(
            f"feature {f.name!r}: the profile's categories {_categories(stats, None)[0]} are "
            f"not the feature's {list(f.categories)}"
        )
    missing = _fraction(stats.get("missing_fraction"))
    present = 1.0 - missing
    other = float(stats.get("other_proportion") or 0.0)
    folded = share.get(None, 0.0) * present
    return [share[c] * present for c in order] + [other * present, missing + folded]


def _fraction(value: Any) -> float:
    x = float(value or 0.0)
    return min(max(x, 0.0), 1.0) if math.isfinite(x) else 0.0


def _normalised(values: Sequence[float] | np.ndarray, slots: int) -> np.ndarray:
    p = np.asarray(values, dtype=np.float64)
    if p.shape != (slots,):
        raise InvalidConfigError(f"reference proportions need {slots} values; got {list(p)}")
    p = np.where(np.isfinite(p) & (p > 0), p, 0.0)
    total = p.sum()
    return p / total if total > 0 else p
