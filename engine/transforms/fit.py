"""Fit a transform spec from training data.

``fit(data, template)`` walks each feature's chain in order: a step is fitted on the output of
the steps before it (so ``standardize`` after ``impute`` sees imputed values), then applied with
the reference implementation to feed the next step. Statistics ignore NaN and infinities.

The template is either a spec JSON object whose fitted fields may be left out, or a column
config ``{column: [step, ...], name: {"column": column, "steps": [...]},
cross_name: {"cross": [...], "num_buckets": n}}`` (features named by their keys). Fields a
template may omit, and the fit-only fields it may add:

- standardize: mean, std (std of a constant column becomes 1)
- min_max_scale: min, max (a constant column gets max = min + 1)
- robust_scale: median, iqr (25th-75th percentile; 0 becomes 1)
- clip: min/max, or fit-only ``lower_quantile`` / ``upper_quantile`` in [0, 1]
- impute: value (mean, median or most_frequent; ties take the smallest value)
- bucketize: boundaries, or fit-only ``num_quantiles`` (k >= 2 equal-frequency buckets)
- vocabulary: vocabulary (most frequent first, ties by string order; "" is never a token),
  fit-only ``max_tokens`` and ``min_frequency`` (default 1)

``inputs`` may be omitted from a template: dtypes are then taken from the data.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from engine.errors import InvalidConfigError, InvalidInputError
from engine.transforms.columns import (
    F64,
    StringColumn,
    _pyarrow,
    as_mapping,
    numeric_column,
    object_numbers_dtype,
    string_column,
)
from engine.transforms.reference import apply_step
from engine.transforms.spec import (
    _NUMERIC_ONLY,
    _STEP_TYPES,
    _STRING_ONLY,
    SCHEMA_VERSION,
    ColumnFeature,
    InputColumn,
    Step,
    TransformSpec,
    step_from_dict,
)

__all__ = ["fit"]

_FIT_ONLY = {
    "clip": {"lower_quantile", "upper_quantile"},
    "bucketize": {"num_quantiles"},
    "vocabulary": {"max_tokens", "min_frequency"},
}


def _fail(where: str, message: str) -> InvalidConfigError:
    return InvalidConfigError(f"transform fit: {where}: {message}")


def _infer_dtype(name: str, values: Any) -> str:
    dtype = getattr(values, "dtype", None)
    if dtype is None:
        values = np.asarray(values)
        dtype = values.dtype
    kind = getattr(dtype, "kind", "O")
    if kind == "O" and str(dtype) not in ("string", "str", "category"):
        # Numbers with None/NaN for missing values are a numeric column, not strings.
        return object_numbers_dtype(values) or "string"
    if str(dtype) in ("string", "str", "category") or kind in "OUST":
        return "string"
    if kind == "f":
        return "float32" if np.dtype(dtype) == np.float32 else "float64"
    if kind in "iu":
        return "int64"
    raise InvalidInputError(f"column {name!r}: cannot use dtype {dtype} (numeric or string only)")


def _finite(where: str, x: F64) -> F64:
    values = x[np.isfinite(x)]
    if values.size == 0:
        raise _fail(where, "no finite values to fit on")
    return values


def _stat(where: str, name: str, raw: Any) -> float:
    value = float(raw)
    if not np.isfinite(value):
        raise InvalidInputError(
            f"transform fit: {where}: the {name} of the training values overflows ({value}); "
            "clip or rescale the column first"
        )
    return value


def _fit_numeric(where: str, op: str, params: dict[str, Any], x: F64) -> dict[str, Any]:
    if op == "standardize" and not {"mean", "std"} <= params.keys():
        v = _finite(where, x)
        with np.errstate(over="ignore", invalid="ignore"):
            mean, std = _stat(where, "mean", v.mean()), _stat(where, "std", v.std())
        params.setdefault("mean", mean)
        params.setdefault("std", std if std > 0 else 1.0)
    elif op == "min_max_scale" and not {"min", "max"} <= params.keys():
        v = _finite(where, x)
        lo, hi = float(v.min()), float(v.max())
        _stat(where, "range", hi - lo)
        params.setdefault("min", lo)
        params.setdefault("max", hi if hi > lo else lo + 1.0)
    elif op == "robust_scale" and not {"median", "iqr"} <= params.keys():
        v = _finite(where, x)
        q25, q50, q75 = (float(q) for q in np.quantile(v, [0.25, 0.5, 0.75]))
        params.setdefault("median", q50)
        params.setdefault("iqr", _stat(where, "iqr", q75 - q25) if q75 > q25 else 1.0)
    elif op == "clip":
        for key, bound in (("lower_quantile", "min"), ("upper_quantile", "max")):
            if key in params:
                q = params.pop(key)
                if isinstance(q, bool) or not isinstance(q, (int, float)) or not 0 <= q <= 1:
                    raise _fail(where, f"{key} must be in [0, 1]; was {q!r}")
                params[bound] = float(np.quantile(_finite(where, x), q))
    elif op == "impute" and "value" not in params:
        params["value"] = _numeric_impute_value(where, params.get("strategy"), x)
    elif op == "bucketize" and "boundaries" not in params:
        k = params.pop("num_quantiles", None)
        if isinstance(k, bool) or not isinstance(k, int) or k < 2:
            raise _fail(where, f"give boundaries or num_quantiles >= 2; num_quantiles was {k!r}")
        v = _finite(where, x)
        bounds = np.unique(np.quantile(v, np.linspace(0.0, 1.0, k + 1)[1:-1]))
        params["boundaries"] = [float(b) for b in bounds]
    params.pop("num_quantiles", None)
    return params


def _numeric_impute_value(where: str, strategy: Any, x: F64) -> float:
    if strategy == "constant":
        raise _fail(where, "strategy 'constant' needs a value")
    v = _finite(where, x)
    if strategy == "mean":
        with np.errstate(over="ignore", invalid="ignore"):
            return _stat(where, "mean", v.mean())
    if strategy == "median":
        return float(np.median(v))
    if strategy == "most_frequent":
        uniq, counts = np.unique(v, return_counts=True)
        return float(uniq[np.argmax(counts)])  # argmax takes the first = smallest on ties
    raise _fail(where, f"strategy must be mean, median, constant or most_frequent; was {strategy!r}")


def _token_counts(col: StringColumn) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """Distinct non-empty strings sorted by count (descending) then string (ascending)."""
    import pyarrow.compute as pc  # type: ignore[import-untyped]

    _pyarrow()
    counts = pc.value_counts(col.array)
    values = counts.field("values").to_numpy(zero_copy_only=False).astype(object)
    freq = counts.field("counts").to_numpy().astype(np.int64)
    keep = values != ""
    values, freq = values[keep], freq[keep]
    order = np.lexsort((values.astype(str), -freq)) if values.size else np.zeros(0, np.int64)
    return values[order], freq[order]


def _fit_string(where: str, op: str, params: dict[str, Any], col: StringColumn) -> dict[str, Any]:
    if op == "impute" and "value" not in params:
        strategy = params.get("strategy")
        if strategy != "most_frequent":
            raise _fail(where, f"a string impute needs a value unless strategy is most_frequent; "
                        f"strategy was {strategy!r}")
        tokens, _ = _token_counts(col)
        if tokens.size == 0:
            raise _fail(where, "no non-empty strings to fit on")
        params["value"] = str(tokens[0])
    elif op == "vocabulary" and "vocabulary" not in params:
        max_tokens = params.pop("max_tokens", None)
        min_frequency = params.pop("min_frequency", 1)
        if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(max_tokens, int)
                                       or max_tokens < 1):
            raise _fail(where, f"max_tokens must be an integer >= 1; was {max_tokens!r}")
        if isinstance(min_frequency, bool) or not isinstance(min_frequency, int) or min_frequency < 1:
            raise _fail(where, f"min_frequency must be an integer >= 1; was {min_frequency!r}")
        tokens, freq = _token_counts(col)
        tokens = tokens[freq >= min_frequency][:max_tokens]
        params["vocabulary"] = [str(t) for t in tokens]
    for key in ("max_tokens", "min_frequency"):
        params.pop(key, None)
    return params


def _fit_chain(name: str, column: str, templates: Any, value: Any) -> ColumnFeature:
    if not isinstance(templates, list):
        raise _fail(f"feature {name!r}", f"steps must be a list; was {templates!r}")
    steps: list[Step] = []
    for i, raw in enumerate(templates):
        where = f"feature {name!r} step {i}"
        if not isinstance(raw, Mapping) or not isinstance(raw.get("op"), str):
            raise _fail(where, f"a step must be an object with an op; was {raw!r}")
        params = dict(raw)
        op = params.pop("op")
        _check_column_kind(f"{where} ({op})", op, column, value)
        if isinstance(value, StringColumn):
            params = _fit_string(f"{where} ({op})", op, params, value)
        elif isinstance(value, np.ndarray):
            params = _fit_numeric(f"{where} ({op})", op, params, value)
        step = step_from_dict(where, {"op": op, **params})
        steps.append(step)
        if i < len(templates) - 1:
            value = apply_step(step, value)
    return ColumnFeature(name=name, column=column, steps=tuple(steps))


def _check_column_kind(where: str, op: str, column: str, value: Any) -> None:
    """Say a step needs the other kind of column before its fitted fields are missed."""
    step_type = _STEP_TYPES.get(op)
    if isinstance(value, StringColumn) and step_type in _NUMERIC_ONLY:
        raise _fail(where, f"needs a numeric column but {column!r} is a string column")
    if isinstance(value, np.ndarray) and step_type in _STRING_ONLY:
        raise _fail(where, f"needs a string column but {column!r} is a numeric column")


def _normalise_template(template: Mapping[str, Any]) -> dict[str, Any]:
    """A column config becomes a spec template (features named after their column)."""
    if "schema_version" in template:
        return dict(template)
    features: list[dict[str, Any]] = []
    for key, entry in template.items():
        if isinstance(entry, Mapping) and ("cross" in entry or "column" in entry):
            features.append({"name": key, **entry})
        else:
            features.append({"name": key, "column": key, "steps": entry})
    return {"schema_version": SCHEMA_VERSION, "features": features}


def fit(data: Any, template: Mapping[str, Any]) -> TransformSpec:
    """Fit a spec from ``data`` (mapping of name -> 1-D array, or a pandas DataFrame).

    Raises InvalidConfigError for a bad template (naming the feature and step) and
    InvalidInputError for bad data (naming the column).
    """
    if not isinstance(template, Mapping):
        raise _fail("template", f"must be a mapping; was {type(template).__name__}")
    tmpl = _normalise_template(template)
    if tmpl.get("schema_version") != SCHEMA_VERSION:
        raise _fail("schema_version", f"unsupported {tmpl.get('schema_version')!r}; "
                    f"this engine reads {SCHEMA_VERSION}")
    mapping = as_mapping(data)
    features_t = tmpl.get("features")
    if not isinstance(features_t, list) or not features_t:
        raise _fail("features", f"must be a non-empty list; was {features_t!r}")
    if "inputs" in tmpl:
        inputs = _declared_inputs(tmpl["inputs"])
    else:
        inputs = _inferred_inputs(features_t, mapping)
    return _fit_features(tmpl, inputs, mapping)


def _declared_inputs(raw: Any) -> tuple[InputColumn, ...]:
    if not isinstance(raw, list) or not all(isinstance(c, Mapping) for c in raw):
        raise _fail("inputs", f"must be a list of {{name, dtype}} objects; was {raw!r}")
    return tuple(InputColumn(c.get("name"), c.get("dtype")) for c in raw)


def _inferred_inputs(features: list[Any], mapping: Mapping[str, Any]) -> tuple[InputColumn, ...]:
    used: list[str] = []
    for f in features:
        if not isinstance(f, Mapping):
            continue
        cols = f["cross"] if isinstance(f.get("cross"), list) else [f.get("column")]
        used += [c for c in cols if isinstance(c, str) and c not in used]
    for name in used:
        if name not in mapping:
            raise InvalidInputError(f"missing input column {name!r} in the training data")
    return tuple(InputColumn(n, _infer_dtype(n, mapping[n])) for n in used)


def _fit_features(tmpl: Mapping[str, Any], inputs: tuple[InputColumn, ...],
                  mapping: Mapping[str, Any]) -> TransformSpec:
    prepared: dict[str, Any] = {}
    for col in inputs:
        if col.name not in mapping:
            raise InvalidInputError(f"missing input column {col.name!r} in the training data")
        values = mapping[col.name]
        prepared[col.name] = (
            string_column(col.name, values) if col.is_string else numeric_column(col.name, values)
        )
    dtypes = {c.name: c for c in inputs}
    features: list[dict[str, Any]] = []
    for i, f in enumerate(tmpl["features"]):
        if not isinstance(f, Mapping):
            raise _fail(f"features[{i}]", f"must be an object; was {f!r}")
        if "cross" in f:
            features.append(dict(f))
            continue
        name, column = f.get("name"), f.get("column")
        if column not in dtypes:
            raise _fail(f"feature {name!r}", f"column {column!r} is not a declared input")
        feat = _fit_chain(str(name), column, f.get("steps"), prepared[column])
        features.append(TransformSpec(inputs, (feat,)).to_dict()["features"][0])
    spec = {
        "schema_version": SCHEMA_VERSION,
        "inputs": [{"name": c.name, "dtype": c.dtype} for c in inputs],
        "features": features,
        "output": tmpl.get("output", {"name": "features"}),
    }
    return TransformSpec.from_dict(spec)

