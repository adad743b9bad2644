"""Strict checks of a reference profile's shape, before the monitor turns it into bins.

A profile comes from the registry (``params["reference_profile"]``), where anyone can store
anything: :func:`check_profile` raises InvalidConfigError naming the first bad field, its
path in the profile and its value, so a server can serve that model without drift monitoring
and say why. It checks only the fields the monitor reads (see
:mod:`engine.monitoring.reference` and ``engine.training.profile``); other fields, present or
future, are left alone.

``features`` and ``outputs``: absent, null, or a mapping of feature name (a string) to that
feature's statistics, a mapping with ``kind``:

- ``"numeric"``: ``bin_edges`` a list of numbers, empty or at least 2, never decreasing (NaN
  and infinities are allowed: the monitor merges the bins around an edge that is not
  finite); ``bin_proportions`` one finite number >= 0 per bin; ``nan_fraction`` and
  ``inf_fraction`` absent, null or a number in [0, 1], together at most 1;
- ``"categorical"``: ``categories`` a list of strings (numbers and booleans are read as their
  text); ``proportions`` one finite number >= 0 per category; ``other_proportion`` and
  ``missing_fraction`` absent, null or a number in [0, 1].

Numbers are ints or floats (numpy's included), never booleans or strings.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any

from engine.errors import InvalidConfigError

__all__ = ["check_feature", "check_profile"]

SECTIONS = ("features", "outputs")


def check_profile(profile: Any) -> None:
    """Raise InvalidConfigError if ``profile`` is not a usable reference profile."""
    if not isinstance(profile, Mapping):
        raise InvalidConfigError(
            f"the reference profile must be a mapping; was {type(profile).__name__}"
        )
    for section in SECTIONS:
        entries = profile.get(section)
        if entries is None:
            continue
        if not isinstance(entries, Mapping):
            raise InvalidConfigError(
                f"profile[{section!r}] must be a mapping of feature name to "
                f"statistics; was {type(entries).__name__}"
            )
        for name, stats in entries.items():
            if not isinstance(name, str):
                raise InvalidConfigError(
                    f"profile[{section!r}] has a feature name that is not a string: {name!r}"
                )
            check_feature(f"profile[{section!r}][{name!r}]", stats)


def check_feature(where: str, stats: Any) -> None:
    """Raise InvalidConfigError if one feature's statistics are malformed (``where``: its
    path, for the message)."""
    if not isinstance(stats, Mapping):
        raise InvalidConfigError(
            f"{where} must be a mapping of statistics; was {type(stats).__name__} {stats!r}"
        )
    kind = stats.get("kind")
    if kind == "numeric":
        edges = [
            _number(e, f"{where}['bin_edges'][{i}]")
            for i, e in enumerate(_list(stats, "bin_edges", where))
        ]
        if len(edges) == 1:
            raise InvalidConfigError(
                f"{where}['bin_edges'] needs no values or at least 2 (the outer edges "
                f"included); was {edges!r}"
            )
        previous = None
        for i, e in enumerate(edges):
            if math.isnan(e):
                continue
            if previous is not None and e < previous:
                raise InvalidConfigError(
                    f"{where}['bin_edges'] must not decrease; {e!r} at index {i} follows "
                    f"{previous!r}"
                )
            previous = e
        _proportions(stats, "bin_proportions", where, max(len(edges) - 1, 0), "bin")
        _fraction(stats, "nan_fraction", where)
        _fraction(stats, "inf_fraction", where)
        nan, inf = stats.get("nan_fraction") or 0.0, stats.get("inf_fraction") or 0.0
        if nan + inf > 1.0 + 1e-9:
            raise InvalidConfigError(
                f"{where}: nan_fraction + inf_fraction must be <= 1; were {nan!r} and {inf!r}"
            )
    elif kind == "categorical":
        categories = _list(stats, "categories", where)
        for i, c in enumerate(categories):
            if not isinstance(c, (str, numbers.Real)):
                raise InvalidConfigError(
                    f"{where}['categories'][{i}] must be a string; was {type(c).__name__} {c!r}"
                )
        _proportions(stats, "proportions", where, len(categories), "category")
        _fraction(stats, "other_proportion", where)
        _fraction(stats, "missing_fraction", where)
    else:
        raise InvalidConfigError(
            f"{where}['kind'] is {kind!r}; expected 'numeric' or 'categorical'"
        )


def _list(stats: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = stats.get(key)
    if value is None:
        return []
    if isinstance(value, (str, bytes, Mapping)) or not hasattr(value, "__iter__"):
        raise InvalidConfigError(
            f"{where}[{key!r}] must be a list; was {type(value).__name__} {value!r}"
        )
    return list(value)


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidConfigError(f"{where} must be a number; was {type(value).__name__} {value!r}")
    return float(value)


def _proportions(stats: Mapping[str, Any], key: str, where: str, count: int, per: str) -> None:
    values = _list(stats, key, where)
    if len(values) != count:
        raise InvalidConfigError(
            f"{where}[{key!r}] needs {count} value(s), one per {per}; got {len(values)}"
        )
    for i, p in enumerate(values):
        x = _number(p, f"{where}[{key!r}][{i}]")
        if not (math.isfinite(x) and x >= 0):
            raise InvalidConfigError(
                f"{where}[{key!r}][{i}] must be a finite number >= 0; was {p!r}"
            )


def _fraction(stats: Mapping[str, Any], key: str, where: str) -> None:
    value = stats.get(key)
    if value is None:
        return
    x = _number(value, f"{where}[{key!r}]")
    if not 0.0 <= x <= 1.0:
        raise InvalidConfigError(f"{where}[{key!r}] must be in [0, 1]; was {value!r}")
