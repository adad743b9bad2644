"""The registry's record types: what a version is, where it came from, how to load it.

All are frozen; :meth:`to_dict` gives the JSON form the CLI prints with ``--json``.

A version's config, signature and lineage are kept as stored and validated only when used
(:attr:`ModelVersion.config`, :attr:`~ModelVersion.inputs` / :attr:`~ModelVersion.outputs`,
:attr:`~ModelVersion.lineage`): a version that another release wrote with values this engine
refuses stays readable (listed, shown, aliased, archived, followed in lineage) and only what
needs the refused value fails, naming the model, the version, the field and the problem. Loading
needs the config; the signature and lineage are metadata (a loaded model reads its tensors from
the model file), needed by drift monitoring and lineage displays.

Reading a record never fails on one bad stored value either: JSON text that does not decode
arrives as :class:`UnreadableJSON` (and is then refused like any other bad config, signature
or lineage), and metrics, params, tags, timestamps or integers this engine cannot read are
named in ``read_errors`` (see :class:`ModelVersion`). Integers: SQLite keeps any value in an
INTEGER column (type affinity turns the text '3' into 3, but keeps 'abc', '' or 3.5 as they are),
so a row edited outside the engine can hold one; PostgreSQL refuses such values, so there this
never happens.
"""

from __future__ import annotations

import json
import math
import reprlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from engine.config import ModelConfig
from engine.errors import InvalidConfigError, ModelLoadError
from engine.names import parse_ref
from engine.repository import POLICY_TAG, parse_version_policy
from engine.signature import TensorSpec

__all__ = [
    "STATUSES",
    "Lineage",
    "LineageChain",
    "ModelSummary",
    "ModelVersion",
    "NewVersion",
    "OrphanRow",
    "ResolvedModel",
    "UnreadableJSON",
    "check_metrics",
    "check_params",
    "check_tags",
]

STATUSES = ("ready", "archived")
_MAX_TEXT = 4096


@dataclass(frozen=True)
class UnreadableJSON:
    """What a JSON column holds when its stored text does not decode (SQLite keeps any text in
    a JSON column; PostgreSQL's json types cannot hold such text). ``stored`` is the value as
    the driver returned it, ``error`` the decoder's message."""

    stored: Any
    error: str

    def describe(self, what: str) -> str:
        return (
            f"{what} is stored as text that is not JSON ({self.error}): {reprlib.repr(self.stored)}"
        )


def read_mapping(
    stored: Any, what: str, check: Callable[[Mapping[str, Any]], dict[str, Any]]
) -> tuple[dict[str, Any], str | None]:
    """A stored metrics/params/tags value as the dict ``check`` (check_metrics, check_params
    or check_tags: the rule it was written under) gives, or ``({}, why)`` when it is no
    mapping or ``check`` refuses it: code that reads e.g. a tag then always gets a string."""
    if isinstance(stored, UnreadableJSON):
        return {}, stored.describe(what)
    if not isinstance(stored, Mapping):
        return {}, f"{what} must be a mapping; was {reprlib.repr(stored)}"
    try:
        return check(stored), None
    except (TypeError, ValueError) as exc:  # InvalidConfigError
        return {}, str(exc)


def read_integer(
    stored: Any, what: str, low: int, high: int | None = None
) -> tuple[int | None, str | None]:
    """A stored integer in ``[low, high]``, or ``(None, why)`` naming ``what`` (the column, as
    ``table.column``) and the stored value. Only SQLite can hand back anything else (see the
    module docstring)."""
    if type(stored) is not int:  # text, a REAL or a BLOB; never bool from a driver
        return None, f"{what} holds {reprlib.repr(stored)}, not an integer"
    if stored < low or (high is not None and stored > high):
        bounds = f"in [{low}, {high}]" if high is not None else f">= {low}"
        return None, f"{what} holds {stored}, not an integer {bounds}"
    return stored, None


def read_timestamp(stored: Any, what: str) -> tuple[datetime | None, str | None]:
    """A stored ISO 8601 timestamp, or ``(None, why)`` when this engine cannot read it."""
    try:
        return datetime.fromisoformat(stored), None
    except (TypeError, ValueError):  # not text (SQLite keeps any type), or not ISO 8601
        return None, f"{what} is not an ISO 8601 timestamp; was {reprlib.repr(stored)}"


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

    ``stored_config``, ``stored_signature`` (``{"inputs": [...], "outputs": [...]}``) and
    ``stored_lineage`` (the five :class:`Lineage` fields) are the JSON forms exactly as the
    database holds them; :attr:`config`, :attr:`inputs` / :attr:`outputs` and :attr:`lineage`
    validate them, and ``*_error`` say why one is refused. Reading a record never validates,
    so one version written under other rules cannot break listing, showing or resolving any
    other.

    ``metrics``, ``params`` and ``tags`` are ``{}`` and ``created_at``, ``version`` and
    ``size_bytes`` are None when the stored value cannot be read (text that is not JSON, JSON
    that is no mapping, a timestamp that is not ISO 8601, an integer column holding text or a
    REAL on SQLite); ``read_errors`` then maps the field to the problem, and is empty otherwise.
    A version whose own number cannot be read (its error names its row id) is listed by
    ``Registry.versions`` and reachable through an alias, but never by number, never as the
    latest, and never loaded; one whose size cannot be read is not loaded either (the size is
    part of verifying the artifact).
    """

    name: str
    version: int | None  # None: read_errors["version"] says why
    status: str
    sha256: str
    size_bytes: int | None  # None: read_errors["size_bytes"] says why
    stored_signature: Any
    stored_config: Any
    metrics: dict[str, float]
    params: dict[str, Any]
    tags: dict[str, str]
    description: str
    stored_lineage: dict[str, Any]
    created_at: datetime | None
    aliases: tuple[str, ...] = ()
    read_errors: Mapping[str, str] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        """``name:VERSION``; ``name:?`` when the stored number cannot be read."""
        return f"{self.name}:{self._number}"

    @property
    def _number(self) -> str:
        return "?" if self.version is None else str(self.version)

    def check_loadable(self) -> None:
        """Raises ModelLoadError, naming the model, the version, the column and the stored
        value, when this version cannot be loaded whatever its config: its own number or its
        artifact's size cannot be read (the size is part of verifying the artifact)."""
        errors = [self.read_errors[f] for f in ("version", "size_bytes") if f in self.read_errors]
        if errors:
            raise ModelLoadError(
                f"model {self.name!r} version {self._number} cannot be loaded: "
                f"{'; '.join(errors)} (its row was changed outside the engine: fix the row, or "
                f"register the model file again)"
            )

    @property
    def config(self) -> ModelConfig:
        """The stored config, validated. Raises InvalidConfigError naming the model, the
        version, the field, the stored value and the allowed range when this engine refuses
        it (a version an older release registered under looser bounds, or a newer release
        with fields this one does not know)."""
        config, error = self._checked_config
        if config is None:
            raise InvalidConfigError(
                f"model {self.name!r} version {self._number} cannot be loaded: its stored config "
                f"is refused by this engine: {error} (written by another release; register the "
                f"model file again with a config this engine accepts)"
            )
        return config

    @property
    def config_error(self) -> str | None:
        """Why this engine refuses the stored config (field, value, allowed range); None when
        the config is valid."""
        return self._checked_config[1]

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        """The stored signature's inputs. Raises InvalidConfigError naming the model, the
        version, the tensor and the problem when this engine refuses the stored signature."""
        return self._signature()[0]

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        """The stored signature's outputs; raises as :attr:`inputs` does."""
        return self._signature()[1]

    @property
    def signature_error(self) -> str | None:
        """Why this engine refuses the stored signature; None when it is valid."""
        return self._checked_signature[1]

    @property
    def lineage(self) -> Lineage:
        """The stored lineage, validated. Raises InvalidConfigError naming the model, the
        version, the field and the problem when this engine refuses it."""
        lineage, error = self._checked_lineage
        if lineage is None:
            raise self._refused("lineage", error)
        return lineage

    @property
    def lineage_error(self) -> str | None:
        """Why this engine refuses the stored lineage; None when it is valid."""
        return self._checked_lineage[1]

    def _signature(self) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
        signature, error = self._checked_signature
        if signature is None:
            raise self._refused("signature", error)
        return signature

    def _refused(self, what: str, error: str | None) -> InvalidConfigError:
        return InvalidConfigError(
            f"model {self.name!r} version {self._number}: its stored {what} is refused by this "
            f"engine: {error} (written by another release or outside the engine)"
        )

    @cached_property
    def _checked_config(self) -> tuple[ModelConfig | None, str | None]:
        if isinstance(self.stored_config, UnreadableJSON):
            return None, self.stored_config.describe("config")
        try:
            return ModelConfig.from_dict(self.stored_config), None
        except (TypeError, ValueError) as exc:  # InvalidConfigError, or a row no release wrote
            return None, str(exc)

    @cached_property
    def _checked_signature(
        self,
    ) -> tuple[tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]] | None, str | None]:
        if isinstance(self.stored_signature, UnreadableJSON):
            return None, self.stored_signature.describe("signature")
        try:
            return _parse_signature(self.stored_signature), None
        except (TypeError, ValueError) as exc:
            return None, str(exc)

    @cached_property
    def _checked_lineage(self) -> tuple[Lineage | None, str | None]:
        spec = self.stored_lineage.get("transform_spec")
        if isinstance(spec, UnreadableJSON):
            return None, spec.describe("lineage transform_spec")
        try:
            return Lineage.from_dict(self.stored_lineage), None
        except (TypeError, ValueError) as exc:  # InvalidConfigError, InvalidModelNameError
            return None, str(exc)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form. ``config``, ``inputs`` / ``outputs`` and ``lineage`` are the
        validated values' JSON forms, or the stored ones as they are when this engine refuses
        them; ``config_error``, ``signature_error`` and ``lineage_error`` then say why (else
        None). A value that cannot be read at all is None: its ``*_error`` or ``read_errors``
        entry names it, with the stored text."""
        config, config_error = self._checked_config
        signature, signature_error = self._checked_signature
        lineage, lineage_error = self._checked_lineage
        if signature is not None:
            inputs: Any = [t.to_dict() for t in signature[0]]
            outputs: Any = [t.to_dict() for t in signature[1]]
        elif isinstance(self.stored_signature, Mapping):
            inputs = self.stored_signature.get("inputs")
            outputs = self.stored_signature.get("outputs")
        else:
            inputs = outputs = None  # not even a mapping: signature_error shows it
        return {
            "name": self.name,
            "version": self.version,
            "status": self.status,
            "sha256": self.sha256,
            "size_bytes": self.size_bytes,
            "inputs": inputs,
            "outputs": outputs,
            "signature_error": signature_error,
            "config": config.to_dict() if config is not None else _json_form(self.stored_config),
            "config_error": config_error,
            "metrics": None if "metrics" in self.read_errors else self.metrics,
            "params": None if "params" in self.read_errors else self.params,
            "tags": None if "tags" in self.read_errors else self.tags,
            "description": self.description,
            "lineage": (
                lineage.to_dict()
                if lineage is not None
                else {k: _json_form(v) for k, v in self.stored_lineage.items()}
            ),
            "lineage_error": lineage_error,
            "created_at": self.created_at.isoformat() if self.created_at is not None else None,
            "aliases": list(self.aliases),
            "read_errors": dict(self.read_errors),
        }


@dataclass(frozen=True)
class ModelSummary:
    """One model and its versions at a glance (``Registry.list``).

    ``read_errors`` names what cannot be read: ``updated_at``; ``versions`` (versions whose
    own number cannot be read: counted in ``version_count``, never the latest); and
    ``alias NAME`` for each alias whose version cannot be told."""

    name: str
    latest_version: int | None  # latest ready version; None when all are archived
    version_count: int
    # alias -> version; None when the version cannot be told (read_errors["alias NAME"] says
    # why: its aliases.version_id, or the number of the version it points at, is damaged).
    aliases: dict[str, int | None]
    updated_at: datetime | None  # None when the stored one cannot be read: see read_errors
    read_errors: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "latest_version": self.latest_version,
            "version_count": self.version_count,
            "aliases": self.aliases,
            "updated_at": self.updated_at.isoformat() if self.updated_at is not None else None,
            "read_errors": dict(self.read_errors),
        }


@dataclass(frozen=True)
class LineageChain:
    """A version and its ancestors (``Registry.lineage_chain``), and why the chain ends
    before a version without a parent, if it does."""

    versions: tuple[ModelVersion, ...]  # the version asked for first, then its parent, ...
    # None: the last version has no parent. Else why its parent is not listed: it cannot be
    # found (deleted, or its number cannot be read: the error names the column and value), it
    # is already in the chain, or the chain is at its length limit.
    stopped: str | None = None


@dataclass(frozen=True)
class OrphanRow:
    """A ``versions`` or ``aliases`` row whose ``model_id`` names no model (``Registry.orphans``):
    it was changed outside the engine (SQLite keeps text or a REAL in an INTEGER column, and
    checks foreign keys only on connections that ask, as the engine's do), so no model's
    listing shows it."""

    table: str  # "versions" or "aliases"
    row_id: int  # versions.id; an aliases row's SQLite rowid (the table has no id column)
    model_id: Any  # as stored
    alias: str | None = None  # the alias name of an aliases row

    @property
    def where(self) -> str:
        """How to find the row: ``versions.id 3``, ``aliases rowid 2 (alias 'production')``."""
        if self.table == "versions":
            return f"versions.id {self.row_id}"
        return f"aliases rowid {self.row_id} (alias {self.alias!r})"

    @property
    def error(self) -> str:
        """The column and the stored value."""
        column = f"{self.table}.model_id"
        stored, error = read_integer(self.model_id, column, 1)
        return error or f"{column} {stored} names no model"


@dataclass(frozen=True)
class ResolvedModel:
    """What a loader needs: a verified artifact path, the config, and the version record."""

    path: Path
    config: ModelConfig
    version: ModelVersion


@dataclass(frozen=True)
class NewVersion:
    """One version to register with :meth:`Registry.register_all`: the arguments of
    :meth:`Registry.register`, checked the same way when registered (``inherit_parent``
    included: see there)."""

    name: str
    path: str | Path
    config: ModelConfig | Mapping[str, Any] | None = None
    metrics: Mapping[str, float] | None = None
    params: Mapping[str, Any] | None = None
    tags: Mapping[str, str] | None = None
    lineage: Lineage | Mapping[str, Any] | None = None
    description: str | None = None
    inherit_parent: bool = False
    # How error messages name the file (an import's "name/1/model.onnx"); its path if None.
    label: str | None = None


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
    if (policy := out.get(POLICY_TAG)) is not None:
        # Read by `engine serve --registry`, which could only warn and ignore it there.
        try:
            parse_version_policy(policy)
        except InvalidConfigError as exc:
            raise InvalidConfigError(f"tag {POLICY_TAG!r}: {exc}") from None
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


def _json_form(stored: Any) -> Any:
    """A stored value for the JSON form: as stored, or None when it is no JSON at all (the
    matching error carries the stored text)."""
    return None if isinstance(stored, UnreadableJSON) else stored


def _parse_signature(stored: Any) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """A stored signature (``{"inputs": [...], "outputs": [...]}``) as tensor specs. Raises
    TypeError or ValueError naming the section, the tensor's index and the problem."""
    if not isinstance(stored, Mapping):
        raise TypeError(
            f"signature must be a mapping of inputs and outputs; was {reprlib.repr(stored)}"
        )
    sections: list[tuple[TensorSpec, ...]] = []
    for section in ("inputs", "outputs"):
        entries = stored.get(section)
        if not isinstance(entries, list):
            raise TypeError(
                f"signature {section} must be a list of tensor specs; was {reprlib.repr(entries)}"
            )
        specs: list[TensorSpec] = []
        for i, entry in enumerate(entries):
            where = f"signature {section}[{i}]"
            if not isinstance(entry, Mapping) or not {"name", "dtype", "shape"} <= set(entry):
                raise TypeError(
                    f"{where} must be a mapping with name, dtype and shape; was "
                    f"{reprlib.repr(entry)}"
                )
            try:
                specs.append(TensorSpec.from_dict(dict(entry)))
            except KeyError as exc:  # the element type: its message names the known ones
                raise ValueError(f"{where} dtype: {exc.args[0]}") from None
            except (TypeError, ValueError):  # int() of a dimension: the only other failure
                raise ValueError(
                    f"{where} shape must be a list of integers; was {reprlib.repr(entry['shape'])}"
                ) from None
        sections.append(tuple(specs))
    return sections[0], sections[1]
