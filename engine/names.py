"""The name grammar for models and aliases, and the model reference grammar.

This module is the specification; the C++ gRPC server implements the same rules and must
accept and refuse exactly the same strings.

Names (model names and alias names)::

    NAME    := FIRST REST*          1 to 128 characters in total
    FIRST   := A-Z | a-z | 0-9 | "_"
    REST    := A-Z | a-z | 0-9 | "_" | "-" | "."

- ASCII only and case-sensitive. Nothing is decoded or normalised before checking: the
  string is accepted or refused exactly as given.
- A name never starts with ``.`` (so ``.``, ``..`` and hidden files are impossible) and never
  with ``-`` (so a name can never be mistaken for a command-line option).
- ``/``, ``\\``, ``%``, ``:``, ``@``, whitespace, control characters and NUL are refused, so
  no name can be a path (``../x``, ``/etc``, ``a/.``, ``a/``), a URL-encoded path (``%2e%2e``,
  ``%252f``) or a reference. Inner and trailing dots are harmless and allowed: ``model..1``,
  ``v1.2.``.

References::

    REF     := NAME | NAME ":" VERSION | NAME "@" ALIAS
    VERSION := "1".."9" followed by 0 to 9 of "0".."9", at most 2147483647
    ALIAS   := NAME

A bare ``NAME`` means the latest version whose status is ``ready``. Errors raise
:class:`~engine.errors.InvalidModelNameError` with the rule broken and the bad value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from engine.errors import InvalidModelNameError

__all__ = ["MAX_NAME_LENGTH", "MAX_VERSION", "ModelRef", "parse_ref", "validate_name"]

MAX_NAME_LENGTH = 128
MAX_VERSION = 2**31 - 1  # fits a signed 32-bit integer in every database and in C++

_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
_VERSION_RE = re.compile(r"[1-9][0-9]{0,9}")


def validate_name(name: object, kind: str = "model name") -> str:
    """Return ``name`` unchanged if it follows the grammar; raise otherwise.

    ``kind`` ("model name", "alias") only words the error message.
    """
    if not isinstance(name, str):
        raise InvalidModelNameError(f"{kind} must be a string; was {name!r}")
    problem = _name_problem(name)
    if problem:
        raise InvalidModelNameError(f"invalid {kind} {_show(name)}: {problem}")
    return name


def _name_problem(name: str) -> str | None:
    # Specific checks first so the message says why, then the grammar as the final word.
    if not name:
        return "must not be empty"
    if "\x00" in name:
        return "must not contain a NUL character"
    if "/" in name or "\\" in name:
        return "must not contain a path separator ('/' or '\\')"
    if "%" in name:
        return "must not contain '%' (URL-encoded characters such as %2e or %2f are refused)"
    if name.startswith("."):
        return "must not start with '.'"
    if name.startswith("-"):
        return "must not start with '-'"
    if len(name) > MAX_NAME_LENGTH:
        return f"must be at most {MAX_NAME_LENGTH} characters; was {len(name)}"
    if _NAME_RE.fullmatch(name) is None:
        bad = next((c for c in name if not (c.isascii() and (c.isalnum() or c in "_.-"))), "?")
        return f"character {bad!r} is not allowed; use ASCII letters, digits, '_', '-' and '.'"
    return None


def _show(value: str) -> str:
    # repr() escapes NUL and control characters; long payloads are cut so logs stay readable.
    return repr(value) if len(value) <= 80 else repr(value[:80]) + "..."


@dataclass(frozen=True)
class ModelRef:
    """A parsed model reference: at most one of ``version`` and ``alias`` is set."""

    name: str
    version: int | None = None
    alias: str | None = None

    def __post_init__(self) -> None:
        validate_name(self.name)
        if self.alias is not None:
            validate_name(self.alias, "alias")
        if self.version is not None:
            _check_version(self.version)
        if self.version is not None and self.alias is not None:
            raise InvalidModelNameError(
                f"a reference has a version or an alias, not both; was {self.name!r} with "
                f"version {self.version} and alias {self.alias!r}"
            )

    def __str__(self) -> str:
        if self.version is not None:
            return f"{self.name}:{self.version}"
        if self.alias is not None:
            return f"{self.name}@{self.alias}"
        return self.name


def parse_ref(ref: object) -> ModelRef:
    """Parse ``name``, ``name:VERSION`` or ``name@ALIAS``."""
    if not isinstance(ref, str):
        raise InvalidModelNameError(f"model reference must be a string; was {ref!r}")
    cut = min((i for i in (ref.find(":"), ref.find("@")) if i >= 0), default=-1)
    if cut < 0:
        return ModelRef(validate_name(ref))
    name, sep, rest = ref[:cut], ref[cut], ref[cut + 1 :]
    validate_name(name)
    if sep == "@":
        return ModelRef(name, alias=validate_name(rest, "alias"))
    if _VERSION_RE.fullmatch(rest) is None:
        raise InvalidModelNameError(
            f"invalid model reference {_show(ref)}: the version after ':' must be a positive "
            f"integer without leading zeros; was {_show(rest)}"
        )
    return ModelRef(name, version=_check_version(int(rest)))


def _check_version(version: object) -> int:
    if not isinstance(version, int) or isinstance(version, bool) or not 1 <= version <= MAX_VERSION:
        raise InvalidModelNameError(
            f"model version must be an int in [1, {MAX_VERSION}]; was {version!r}"
        )
    return version
