"""The registry's record types: what a version is, where it came from, how to load it.

All are frozen; :meth:`to_dict` gives the JSON form the CLI prints with ``--json``.

A version's config is kept as stored and validated only when it is used to load the model
(:attr:`ModelVersion.config`): a version that an older release registered with values this
engine's :class:`~engine.config.ModelConfig` refuses stays readable (listed, shown, aliased,
followed in lineage) and fails only when loaded, naming the version, the field and the value.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from engine.config import ModelConfig
from engine.errors import InvalidConfigError
from engine.names import parse_ref
from engine.signature import TensorSpec

__all__ = [
    "STATUSES",
    "Lineage",
    "ModelSummary",
    "ModelVersion",
    "NewVersion",
    "ResolvedModel",
    "check_metrics",
    "check_params",
    "check_tags",
]

STATUSES = ("ready", "archived")
_MAX_TEXT = 4096


@dataclass(frozen=True)
class Lineage:
    """Where a version came from. Every field is optional.

    ``data_fingerprint``: ``sha256:<hex>`` of the training data (see
    :mod:`engine.registry.fingerprint`). ``code_revision``: git commit of the training code.
    ``parent``: the version this one was derived from, as ``name:VERSION``.
    ``transform_spec``: the fitted feature-transform spec (JSON form).
    ``created_by``: who registered it (the registry fills in the OS user when left empty).
    """

    data_fingerprint: str | None = None
    code_revision: str | None = None
    parent: str | None = None
    transform_spec: dict[str, Any] | None = field(default=None, compare=False)
    created_by: str | None = None

    def __post_init__(self) -> None:
        for name in ("data_fingerprint", "code_revision", "created_by"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, str) or len(value) > 256):
                raise InvalidConfigError(
                    f"lineage {name} must be a string of at most 256 characters; was {value!r}"
                )
        if self.parent is not None:
            ref = parse_ref(self.parent)
            if ref.version is None:
                raise InvalidConfigError(
                    f"lineage parent must name an exact version as name:VERSION; was "
                    f"{self.parent!r}"
                )
        if self.transform_spec is not None:
            check_params(self.transform_spec, "lineage transform_spec")

    def to_dict(self) -> dict[str, Any]:
        return {
            "data_fingerprint": self.data_fingerprint,
            "code_revision": self.code_revision,
            "parent": self.parent,
            "transform_spec": self.transform_spec,
            "created_by": self.created_by,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Lineage:
        known = {"data_fingerprint", "code_revision", "parent", "transform_spec", "created_by"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise InvalidConfigError(f"unknown lineage fields {unknown}; known: {sorted(known)}")
        return cls(**dict(data))


@dataclass(frozen=True)
class ModelVersion:
    """One registered version of a model, as stored.

    ``stored_config`` is the config's JSON form exactly as the database holds it; :attr:`config`
    validates it. Reading a record never validates the config, so one version written under
    older bounds cannot break listing, showing or resolving any other.
    """

    name: str
    version: int
    status: str
    sha256: str
    size_bytes: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    stored_config: Any
    metrics: dict[str, float]
    params: dict[str, Any]
    tags: dict[str, str]
    description: str
    lineage: Lineage
    created_at: datetime
    aliases: tuple[str, ...] = ()

    @property
    def ref(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def config(self) -> ModelConfig:
        """The stored config, validated. Raises InvalidConfigError naming the model, the
        version, the field, the stored value and the allowed range when this engine refuses
        it (a version an older release registered under looser bounds, or a newer release
        with fields this one does not know)."""
        config, error = self._checked_config
        if config is None:
            raise InvalidConfigError(
                f"model {self.name!r} version {self.version} cannot be loaded: its stored config "
                f"is refused by this engine: {error} (written by another release; register the "
                f"model file again with a config this engine accepts)"
            )
        return config

    @property
    def config_error(self) -> str | None:
        """Why this engine refuses the stored config (field, value, allowed range); None when
        the config is valid."""
        return self._checked_config[1]

    @cached_property
    def _checked_config(self) -> tuple[ModelConfig | None, str | None]:
        try:
            return ModelConfig.from_dict(self.stored_config), None
        except (TypeError, ValueError) as exc:  # InvalidConfigError, or a row no release wrote
            return None, str(exc)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form. ``config`` is the validated config's JSON form, or the stored one as
        is when this engine refuses it; ``config_error`` then says why (else None)."""
        config, error = self._checked_config
        return {
            "name": self.name,
            "version": self.version,
            "status": self.status,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "inputs": [t.to_dict() for t in self.inputs],
            "outputs": [t.to_dict() for t in self.outputs],
            "config": config.to_dict() if config is not None else self.stored_config,
            "config_error": error,
            "metrics": self.metrics,
            "params": self.params,
            "tags": self.tags,
            "description": self.description,
            "lineage": self.lineage.to_dict(),
            "created_at": self.created_at.isoformat(),
            "aliases": list(self.aliases),
        }


@dataclass(frozen=True)
class ModelSummary:
    """One model and its versions at a glance (``Registry.list``)."""

    name: str
    latest_version: int | None  # latest ready version; None when all are archived
    version_count: int
    aliases: dict[str, int]
    updated_at: datetime

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "latest_version": self.latest_version,
            "version_count": self.version_count,
            "aliases": self.aliases,
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True)
class ResolvedModel:
    """What a loader needs: a verified artifact path, the config, and the version record."""

    path: Path
    config: ModelConfig
    version: ModelVersion


@dataclass(frozen=True)
class NewVersion:
    """One version to register with :meth:`Registry.register_all`: the arguments of
    :meth:`Registry.register`, checked the same way when registered."""

    name: str
    path: str | Path
    config: ModelConfig | Mapping[str, Any] | None = None
    metrics: Mapping[str, float] | None = None
    params: Mapping[str, Any] | None = None
    tags: Mapping[str, str] | None = None
    lineage: Lineage | Mapping[str, Any] | None = None
    description: str | None = None


def check_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, value in _mapping(metrics, "metrics").items():
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            raise InvalidConfigError(f"metric {key!r} must be a finite number; was {value!r}")
        out[key] = float(value)
    return out


def check_tags(tags: Mapping[str, Any]) -> dict[str, str]:
    out = _mapping(tags, "tags")
    for key, value in out.items():
        if not isinstance(value, str) or len(value) > _MAX_TEXT:
            raise InvalidConfigError(
                f"tag {key!r} must be a string of at most {_MAX_TEXT} characters; was {value!r}"
            )
    return dict(out)


def check_params(params: Mapping[str, Any], what: str = "params") -> dict[str, Any]:
    out = _mapping(params, what)
    try:
        json.dumps(out, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidConfigError(f"{what} must be JSON-serialisable without NaN: {exc}") from exc
    return dict(out)


def _mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidConfigError(f"{what} must be a mapping; was {value!r}")
    for key in value:
        if not isinstance(key, str) or not key or len(key) > 256:
            raise InvalidConfigError(
                f"{what} keys must be non-empty strings of at most 256 characters; was {key!r}"
            )
    return value
