"""Triton-style model repositories: ``<repo>/<name>/config.pbtxt`` and
``<repo>/<name>/<version>/model.onnx``, read into :class:`~engine.config.ModelConfig`.

``config.pbtxt`` is protobuf text format. This module reads the subset the engine supports,
strictly: an unknown field, a repeated scalar, a wrong type or an unsupported value is an
:class:`~engine.errors.InvalidConfigError` naming the file, the line and the problem. Fields::

    name, platform ("onnxruntime_onnx"), backend ("onnxruntime"), default_model_filename,
    max_batch_size,
    input / output { name, data_type, dims },
    dynamic_batching { preferred_batch_size, max_queue_delay_microseconds,
                       default_queue_policy { max_queue_size, default_timeout_microseconds,
                                              allow_timeout_override, timeout_action } },
    instance_group { name, count, kind, gpus },
    version_policy { latest { num_versions } | specific { versions } | all { } },
    parameters { key, value { string_value } }

Meaning follows Triton: with ``max_batch_size > 0`` the model has a batch dimension of at most
that many rows and the ``dims`` exclude it (so -1 is prepended); dynamic batching (combining
requests) is on only when ``dynamic_batching`` is present. ``max_batch_size: 0`` means the model
has no batch dimension and does not batch. ``KIND_GPU`` selects the ``cuda``
provider, ``KIND_CPU`` the ``cpu`` one; ``KIND_AUTO`` (or no kind) keeps the engine's default.
The version policy defaults to Triton's ``latest { num_versions: 1 }``.

``default_queue_policy`` sets ``max_queue_size`` (Triton's 0, no bound, becomes the largest
size the engine takes) and ``default_timeout_us``. A request's own timeout always applies, so
``allow_timeout_override: false`` is refused, as is ``timeout_action: DELAY`` (a request past
its deadline fails without running: REJECT). ``parameters`` are Triton's ONNX Runtime backend
keys ``intra_op_thread_count`` and ``inter_op_thread_count``, and the engine's own
``completion_spin`` ("true" or "false") and ``worker_cpus`` ("0,2": worker i runs only on the
i-th CPU of the list, cycling); any other key is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.config import MAX_INT32, ModelConfig
from engine.errors import (
    InvalidConfigError,
    InvalidModelNameError,
    ModelLoadError,
    ModelNotFoundError,
)
from engine.names import MAX_VERSION, validate_name
from engine.signature import DTYPES, TensorSpec

if TYPE_CHECKING:
    from engine.registry import Registry

__all__ = [
    "POLICY_TAG",
    "ImportResult",
    "RepositoryModel",
    "RepositoryVersion",
    "VersionPolicy",
    "import_repository",
    "parse_pbtxt",
    "parse_version_policy",
    "policy_text",
    "read_config",
    "scan_model",
    "scan_repository",
    "serving_policy_tag",
]

CONFIG_FILE = "config.pbtxt"
DEFAULT_MODEL_FILE = "model.onnx"

# ---- protobuf text format: tokens ----------------------------------------------------------

_TOKEN_RE = re.compile(
    r"""
    (?P<space>[ \t\r\f\v]+) | (?P<newline>\n) | (?P<comment>\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<number>[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<punct>[{}\[\]:,;<>])
""",
    re.VERBOSE,
)


@dataclass(frozen=True)
class _Token:
    kind: str  # "string", "number", "ident", "punct", "end"
    text: str
    line: int


def _tokenize(text: str, source: str) -> list[_Token]:
    tokens: list[_Token] = []
    line, pos = 1, 0
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if match is None:
            raise InvalidConfigError(f"{source}:{line}: unexpected character {text[pos]!r}")
        kind = match.lastgroup or ""
        if kind == "newline":
            line += 1
        elif kind not in ("space", "comment"):
            tokens.append(_Token(kind, match.group(), line))
        pos = match.end()
    tokens.append(_Token("end", "", line))
    return tokens


# ---- protobuf text format: the supported schema ----------------------------------------------

# message name -> field name -> (type, repeated). Types: "int", "string", "enum", "bool", or a
# message.
_SCHEMA: dict[str, dict[str, tuple[str, bool]]] = {
    "ModelConfig": {
        "name": ("string", False),
        "platform": ("string", False),
        "backend": ("string", False),
        "default_model_filename": ("string", False),
        "max_batch_size": ("int", False),
        "input": ("ModelInput", True),
        "output": ("ModelOutput", True),
        "dynamic_batching": ("ModelDynamicBatching", False),
        "instance_group": ("ModelInstanceGroup", True),
        "version_policy": ("ModelVersionPolicy", False),
        "parameters": ("ModelParameter", True),
    },
    "ModelInput": {"name": ("string", False), "data_type": ("enum", False), "dims": ("int", True)},
    "ModelOutput": {"name": ("string", False), "data_type": ("enum", False), "dims": ("int", True)},
    "ModelDynamicBatching": {
        "preferred_batch_size": ("int", True),
        "max_queue_delay_microseconds": ("int", False),
        "default_queue_policy": ("ModelQueuePolicy", False),
    },
    "ModelQueuePolicy": {
        "max_queue_size": ("int", False),
        "default_timeout_microseconds": ("int", False),
        "allow_timeout_override": ("bool", False),
        "timeout_action": ("enum", False),
    },
    "ModelParameter": {"key": ("string", False), "value": ("ModelParameterValue", False)},
    "ModelParameterValue": {"string_value": ("string", False)},
    "ModelInstanceGroup": {
        "name": ("string", False),
        "count": ("int", False),
        "kind": ("enum", False),
        "gpus": ("int", True),
    },
    "ModelVersionPolicy": {
        "latest": ("Latest", False),
        "specific": ("Specific", False),
        "all": ("All", False),
    },
    "Latest": {"num_versions": ("int", False)},
    "Specific": {"versions": ("int", True)},
    "All": {},
}

_STRING_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"'}


class _Parser:
    """Recursive descent over the tokens, checking each field against ``_SCHEMA``."""

    def __init__(self, tokens: list[_Token], source: str) -> None:
        self.tokens, self.source, self.pos = tokens, source, 0

    def error(self, message: str, token: _Token | None = None) -> InvalidConfigError:
        line = (token or self.tokens[self.pos]).line
        return InvalidConfigError(f"{self.source}:{line}: {message}")

    def next(self) -> _Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def peek(self, text: str) -> bool:
        token = self.tokens[self.pos]
        return token.kind == "punct" and token.text == text

    def expect(self, text: str) -> None:
        token = self.next()
        if token.kind != "punct" or token.text != text:
            shown = token.text or "end of file"
            raise self.error(f"expected {text!r} but found {shown!r}", token)

    def message(self, type_name: str, closer: str | None) -> dict[str, Any]:
        fields = _SCHEMA[type_name]
        out: dict[str, Any] = {}
        while True:
            token = self.tokens[self.pos]
            if closer is None and token.kind == "end":
                return out
            if closer is not None and self.peek(closer):
                self.pos += 1
                return out
            if token.kind != "ident":
                shown = token.text or "end of file"
                raise self.error(f"expected a field name in {type_name} but found {shown!r}")
            self.pos += 1
            if token.text not in fields:
                known = ", ".join(sorted(fields)) or "none"
                raise self.error(
                    f"unknown or unsupported field {token.text!r} in {type_name} "
                    f"(supported: {known})",
                    token,
                )
            field_type, repeated = fields[token.text]
            values = self.field_values(field_type, token)
            if repeated:
                out.setdefault(token.text, []).extend(values)
            elif token.text in out or len(values) != 1:
                raise self.error(
                    f"field {token.text!r} of {type_name} may be given only once", token
                )
            else:
                out[token.text] = values[0]
            if self.peek(",") or self.peek(";"):
                self.pos += 1

    def field_values(self, field_type: str, name: _Token) -> list[Any]:
        if field_type in _SCHEMA:  # message: `name { ... }`, `name: { ... }`, or `name: [{..}]`
            if self.peek(":"):
                self.pos += 1
            if self.peek("["):
                return self.list_of(lambda: self.message_value(field_type))
            return [self.message_value(field_type)]
        self.expect(":")
        if self.peek("["):
            return self.list_of(lambda: self.scalar(field_type, name))
        return [self.scalar(field_type, name)]

    def message_value(self, type_name: str) -> dict[str, Any]:
        opener = self.next()
        if opener.kind == "punct" and opener.text in "{<":
            return self.message(type_name, "}" if opener.text == "{" else ">")
        raise self.error(f"expected '{{' to open {type_name} but found {opener.text!r}", opener)

    def list_of(self, item: Any) -> list[Any]:
        self.expect("[")
        values: list[Any] = []
        if self.peek("]"):
            self.pos += 1
            return values
        while True:
            values.append(item())
            if self.peek("]"):
                self.pos += 1
                return values
            self.expect(",")

    def scalar(self, field_type: str, name: _Token) -> Any:
        token = self.next()
        field = name.text
        if field_type == "int":
            if token.kind != "number" or not re.fullmatch(r"[-+]?\d+", token.text):
                raise self.error(f"field {field!r} needs an integer; found {token.text!r}", token)
            return int(token.text)
        if field_type == "bool":
            if token.text not in ("true", "false", "True", "False"):
                raise self.error(f"field {field!r} needs true or false; found {token.text!r}",
                                 token)
            return token.text in ("true", "True")
        if field_type == "enum":
            if token.kind != "ident":
                raise self.error(
                    f"field {field!r} needs an enum name such as TYPE_FP32; found {token.text!r}",
                    token,
                )
            return token.text
        if token.kind != "string":
            raise self.error(f"field {field!r} needs a quoted string; found {token.text!r}", token)
        return self.unquote(token)

    def unquote(self, token: _Token) -> str:
        body, out, i = token.text[1:-1], [], 0
        while i < len(body):
            if body[i] == "\\":
                escaped = body[i + 1]
                if escaped not in _STRING_ESCAPES:
                    raise self.error(f"unsupported escape '\\{escaped}' in string", token)
                out.append(_STRING_ESCAPES[escaped])
                i += 2
            else:
                out.append(body[i])
                i += 1
        return "".join(out)


def parse_pbtxt(text: str, source: str = "<config.pbtxt>") -> dict[str, Any]:
    """Parse a ``config.pbtxt`` into plain dicts and lists, checked against the supported
    schema. ``source`` names the file in error messages (``source:line: problem``)."""
    parser = _Parser(_tokenize(text, source), source)
    return parser.message("ModelConfig", None)


# ---- mapping to the engine's config ----------------------------------------------------------


@dataclass(frozen=True)
class VersionPolicy:
    """Which version folders to serve: Triton's ``latest``, ``specific`` or ``all``."""

    kind: str = "latest"
    num_versions: int = 1
    versions: tuple[int, ...] = ()

    def select(self, available: list[int]) -> list[int]:
        """The chosen versions, ascending. Raises InvalidConfigError for missing specifics."""
        ordered = sorted(available)
        if self.kind == "all":
            return ordered
        if self.kind == "latest":
            return ordered[-self.num_versions :]
        missing = sorted(set(self.versions) - set(ordered))
        if missing:
            raise InvalidConfigError(
                f"version_policy names versions {missing} that have no folder; available: {ordered}"
            )
        return sorted(self.versions)


# The tag of a registered version that names its serving version policy, in the text
# parse_version_policy reads (that of `engine serve --versions`). `engine serve --registry`
# reads it from the version an alias points at; the registry refuses a value it cannot read.
POLICY_TAG = "version_policy"
_SPECIFIC_RE = re.compile(r"[1-9][0-9]{0,9}(,[1-9][0-9]{0,9})*")


def parse_version_policy(text: str) -> VersionPolicy:
    """``latest:N``, ``all`` or ``1,3`` (specific versions). Raises InvalidConfigError."""
    value = text.strip()
    if value == "all":
        return VersionPolicy("all")
    if value.startswith("latest:"):
        count = value[len("latest:") :]
        if not re.fullmatch(r"[1-9][0-9]{0,5}", count):
            raise InvalidConfigError(
                f"version policy latest:N needs an integer N >= 1; was {text!r}"
            )
        return VersionPolicy("latest", num_versions=int(count))
    if _SPECIFIC_RE.fullmatch(value):
        versions = tuple(sorted({int(v) for v in value.split(",")}))
        if versions[-1] > MAX_VERSION:
            raise InvalidConfigError(
                f"version policy versions must be at most {MAX_VERSION}; was {text!r}"
            )
        return VersionPolicy("specific", versions=versions)
    raise InvalidConfigError(
        f"version policy must be latest:N, all, or version numbers such as 1,3; was {text!r}"
    )


def policy_text(policy: VersionPolicy) -> str:
    """``policy`` in the text :func:`parse_version_policy` reads."""
    if policy.kind == "all":
        return "all"
    if policy.kind == "latest":
        return f"latest:{policy.num_versions}"
    return ",".join(str(v) for v in sorted(set(policy.versions)))


_TRITON_DTYPES = {d.triton: d.name for d in DTYPES}


def read_config(
    path: Path, model_name: str, source: str | None = None
) -> tuple[ModelConfig, VersionPolicy, str]:
    """Read ``config.pbtxt`` at ``path`` for the model folder ``model_name``.

    Returns the config, the version policy and the model file name. Raises InvalidConfigError
    naming the file as ``source`` (default: ``path``), and the line for syntax and schema
    errors; the message holds no other path.
    """
    source = source or str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidConfigError(f"{source}: cannot read: {exc.strerror or 'error'}") from exc
    except UnicodeDecodeError as exc:
        raise InvalidConfigError(f"{source}: cannot read: {exc}") from exc
    return config_from_dict(parse_pbtxt(text, source), model_name, source)


def config_from_dict(
    data: dict[str, Any], model_name: str, source: str
) -> tuple[ModelConfig, VersionPolicy, str]:
    def bad(message: str) -> InvalidConfigError:
        return InvalidConfigError(f"{source}: {message}")

    if data.get("name", model_name) != model_name:
        raise bad(f"name {data['name']!r} does not match the model's name {model_name!r}")
    if data.get("platform", "onnxruntime_onnx") != "onnxruntime_onnx":
        raise bad(f"platform {data['platform']!r} is not supported; only 'onnxruntime_onnx'")
    if data.get("backend", "onnxruntime") != "onnxruntime":
        raise bad(f"backend {data['backend']!r} is not supported; only 'onnxruntime'")
    filename = data.get("default_model_filename", DEFAULT_MODEL_FILE)
    if filename in ("", ".", "..") or "/" in filename or "\\" in filename or "\0" in filename:
        raise bad(f"default_model_filename must be a plain file name; was {filename!r}")

    max_batch = data.get("max_batch_size", 0)
    if max_batch < 0:
        raise bad(f"max_batch_size must be >= 0; was {max_batch}")
    batch_dim = (-1,) if max_batch > 0 else ()
    kwargs: dict[str, Any] = {
        "inputs": tuple(_tensor(t, "input", batch_dim, bad) for t in data.get("input", [])),
        "outputs": tuple(_tensor(t, "output", batch_dim, bad) for t in data.get("output", [])),
        # Triton: max_batch_size bounds the batch dimension (0: there is none) whether or not
        # the dynamic batcher combines requests; only `dynamic_batching` turns combining on.
        "max_batch_size": max_batch,
        "batching": "dynamic_batching" in data,
    }
    dynamic = data.get("dynamic_batching")
    if dynamic is not None:
        if max_batch == 0:
            raise bad("dynamic_batching needs max_batch_size > 0")
        kwargs["preferred_batch_sizes"] = tuple(dynamic.get("preferred_batch_size", []))
        kwargs["max_queue_delay_us"] = dynamic.get("max_queue_delay_microseconds", 0)
        kwargs.update(_queue_policy(dynamic.get("default_queue_policy"), bad))
    kwargs.update(_instances(data.get("instance_group", []), bad))
    kwargs.update(_parameters(data.get("parameters", []), bad))
    try:
        config = ModelConfig(**kwargs)
    except InvalidConfigError as exc:
        raise bad(str(exc)) from None
    return config, _policy(data.get("version_policy"), bad), filename


def _tensor(data: dict[str, Any], what: str, batch_dim: tuple[int, ...], bad: Any) -> TensorSpec:
    for required in ("name", "data_type", "dims"):
        if required not in data:
            raise bad(f"an {what} lacks {required!r}")
    dtype = _TRITON_DTYPES.get(data["data_type"])
    if dtype is None:
        raise bad(
            f"{what} {data['name']!r} has data_type {data['data_type']}; supported: "
            f"{sorted(_TRITON_DTYPES)}"
        )
    dims = data["dims"]
    if any(d < -1 or d == 0 for d in dims):
        raise bad(f"{what} {data['name']!r} dims must be positive or -1; was {dims}")
    return TensorSpec(data["name"], dtype, batch_dim + tuple(dims))


def _queue_policy(data: dict[str, Any] | None, bad: Any) -> dict[str, Any]:
    if data is None:
        return {}
    action = data.get("timeout_action", "REJECT")
    if action != "REJECT":
        raise bad(f"default_queue_policy timeout_action {action} is not supported; only REJECT "
                  "(a request whose deadline passes in the queue fails without running)")
    if not data.get("allow_timeout_override", True):
        raise bad("default_queue_policy allow_timeout_override: false is not supported; a "
                  "request's own timeout always applies")
    out: dict[str, Any] = {}
    if "max_queue_size" in data:
        size = data["max_queue_size"]
        if size < 0:
            raise bad(f"default_queue_policy max_queue_size must be >= 0; was {size}")
        out["max_queue_size"] = size if size > 0 else MAX_INT32  # Triton's 0: no bound
    if "default_timeout_microseconds" in data:
        out["default_timeout_us"] = data["default_timeout_microseconds"]
    return out


def _count(value: str) -> int:
    if not re.fullmatch(r"\d{1,9}", value):
        raise ValueError(value)
    return int(value)


# parameters key -> (ModelConfig field, parser of the string value, what it takes).
_PARAMETERS: dict[str, tuple[str, Any, str]] = {
    "intra_op_thread_count": ("intra_op_threads", _count, "a thread count (0: ORT's default)"),
    "inter_op_thread_count": ("inter_op_threads", _count, "a thread count (0: ORT's default)"),
    "completion_spin": ("completion_spin", {"true": True, "false": False}.__getitem__,
                        '"true" or "false"'),
    "worker_cpus": ("worker_cpus", lambda v: tuple(_count(c) for c in v.split(",")) if v else (),
                    'CPU numbers separated by commas, e.g. "0,2" ("": unpinned)'),
}


def _parameters(entries: list[dict[str, Any]], bad: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for entry in entries:
        key = entry.get("key")
        if key not in _PARAMETERS:
            raise bad(f"parameters key {key!r} is not supported; supported: "
                      f"{sorted(_PARAMETERS)}")
        field_name, parse, expected = _PARAMETERS[key]
        if field_name in out:
            raise bad(f"parameters key {key!r} is given twice")
        value = entry.get("value", {}).get("string_value")
        try:
            out[field_name] = parse(value)
        except (KeyError, TypeError, ValueError):
            raise bad(f"parameters {key!r} needs a string_value of {expected}; was "
                      f"{value!r}") from None
    return out


def _instances(groups: list[dict[str, Any]], bad: Any) -> dict[str, Any]:
    if not groups:
        return {}
    kinds = {g.get("kind", "KIND_AUTO") for g in groups}
    if len(kinds) > 1:
        raise bad(f"instance_group kinds must all be the same; were {sorted(kinds)}")
    kind = kinds.pop()
    out: dict[str, Any] = {"instances": sum(g.get("count", 1) for g in groups)}
    if kind == "KIND_GPU":
        out["providers"] = ("cuda",)
        gpus = sorted({gpu for g in groups for gpu in g.get("gpus", [])})
        if len(gpus) > 1:
            raise bad(f"instance_group over several GPUs {gpus} is not supported; use one")
        if gpus:
            out["device_id"] = gpus[0]
    elif kind == "KIND_CPU":
        out["providers"] = ("cpu",)
    elif kind != "KIND_AUTO":
        raise bad(
            f"instance_group kind {kind} is not supported; use KIND_CPU, KIND_GPU or KIND_AUTO"
        )
    if any(g.get("gpus") for g in groups) and kind != "KIND_GPU":
        raise bad("instance_group gpus needs kind: KIND_GPU")
    return out


def _policy(data: dict[str, Any] | None, bad: Any) -> VersionPolicy:
    if data is None:
        return VersionPolicy()
    if len(data) != 1:
        raise bad(f"version_policy needs exactly one of latest, specific, all; was {sorted(data)}")
    kind, body = next(iter(data.items()))
    if kind == "latest":
        num = body.get("num_versions", 1)
        if num < 1:
            raise bad(f"version_policy latest num_versions must be >= 1; was {num}")
        return VersionPolicy("latest", num_versions=num)
    if kind == "specific":
        versions = tuple(body.get("versions", []))
        if not versions or any(not 1 <= v <= MAX_VERSION for v in versions):
            raise bad(
                f"version_policy specific needs versions in [1, {MAX_VERSION}]; was "
                f"{list(versions)}"
            )
        return VersionPolicy("specific", versions=versions)
    return VersionPolicy("all")


# ---- scanning a repository -------------------------------------------------------------------


@dataclass(frozen=True)
class RepositoryVersion:
    version: int
    path: Path  # the model file


@dataclass(frozen=True)
class RepositoryModel:
    """One model folder: its config and the versions its policy selects, ascending."""

    name: str
    config: ModelConfig
    policy: VersionPolicy
    versions: tuple[RepositoryVersion, ...]


def scan_repository(root: str | Path) -> list[RepositoryModel]:
    """Read every model folder under ``root`` (hidden folders and plain files are skipped).

    Raises ModelLoadError if ``root`` is not a folder or a model has no version to serve,
    InvalidModelNameError for a folder name that breaks the name grammar, InvalidConfigError
    for a bad ``config.pbtxt``.
    """
    root = Path(root)
    if not root.is_dir():
        raise ModelLoadError(f"model repository {str(root)!r} is not a folder")
    models = []
    for folder in sorted(root.iterdir()):
        if folder.name.startswith(".") or not folder.is_dir():
            continue
        try:
            validate_name(folder.name)
        except InvalidModelNameError as exc:
            raise InvalidModelNameError(f"model folder {str(folder)!r}: {exc}") from None
        models.append(_scan_model(folder))
    return models


def scan_model(root: str | Path, name: str) -> RepositoryModel:
    """Read the one model folder ``root/name``, without looking at any other folder (a broken
    ``config.pbtxt`` elsewhere in the repository does not matter).

    Raises InvalidModelNameError for a name outside the grammar (checked before any path is
    built), ModelLoadError if ``root`` is not a folder or the model has no version to serve,
    ModelNotFoundError if there is no folder ``name``, InvalidConfigError for a bad
    ``config.pbtxt``.
    """
    validate_name(name)
    root = Path(root)
    if not root.is_dir():
        raise ModelLoadError(f"model repository {str(root)!r} is not a folder")
    folder = root / name
    if not folder.is_dir():
        raise ModelNotFoundError(f"no model {name!r} in the repository")
    return _scan_model(folder)


def _scan_model(folder: Path) -> RepositoryModel:
    config_path = folder / CONFIG_FILE
    # Messages name files relative to the repository: a server passes them to its clients.
    source = f"{folder.name}/{CONFIG_FILE}"
    if config_path.exists():
        if not config_path.resolve().is_relative_to(folder.resolve()):
            # Parse errors quote the file: never a file outside the repository.
            raise InvalidConfigError(f"{source}: a link out of the model folder is refused")
        config, policy, filename = read_config(config_path, folder.name, source)
    else:
        config, policy, filename = ModelConfig(), VersionPolicy(), DEFAULT_MODEL_FILE
    available: dict[int, Path] = {}
    for sub in folder.iterdir():
        # Triton's version folders are positive integers; anything else is not a version.
        if (
            sub.is_dir()
            and re.fullmatch(r"[1-9][0-9]{0,9}", sub.name)
            and int(sub.name) <= MAX_VERSION
            and (sub / filename).is_file()
        ):
            available[int(sub.name)] = sub / filename
    if not available:
        raise ModelLoadError(
            f"model folder {folder.name!r} has no version folder with "
            f"{filename!r} (expected {folder.name}/1/{filename})"
        )
    try:
        chosen = policy.select(list(available))
    except InvalidConfigError as exc:
        raise InvalidConfigError(f"{source}: {exc}") from None
    return RepositoryModel(
        folder.name, config, policy, tuple(RepositoryVersion(v, available[v]) for v in chosen)
    )


# ---- importing into the registry -------------------------------------------------------------


@dataclass(frozen=True)
class ImportResult:
    name: str
    repository_version: int
    registered_version: int
    skipped: bool  # True when the same bytes and config were already registered under this name

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "repository_version": self.repository_version,
            "registered_version": self.registered_version,
            "skipped": self.skipped,
        }


def serving_policy_tag(policy: VersionPolicy) -> str | None:
    """The registry's POLICY_TAG for a config.pbtxt's version policy, None for the default
    (which `engine serve --registry` matches by serving the alias's target). A ``specific``
    policy has none: it names a repository's version folders, not the registry's numbers."""
    if policy == VersionPolicy() or policy.kind == "specific":
        return None
    return policy_text(policy)


def _import_tags(model: RepositoryModel, item: RepositoryVersion) -> dict[str, str]:
    tags = {"source": "model-repository", "repository_version": str(item.version)}
    # So that `engine serve --registry` serves what `--model-repository` would.
    if (policy := serving_policy_tag(model.policy)) is not None:
        tags[POLICY_TAG] = policy
    return tags


def import_repository(
    registry: Registry, root: str | Path, *, alias: str | None = None
) -> list[ImportResult]:
    """Register every selected version of every model under ``root``, oldest first: all of
    them or none.

    Everything is checked before anything is registered (every ``config.pbtxt``, and every
    selected model file against its config, as :meth:`Registry.register` checks it), and the
    versions are then registered in one database transaction
    (:meth:`Registry.register_all`): an import that fails on one model, or whose database
    fails part way, registers none and leaves no artifact referenced. A registry version is a
    model file *and* its config: a version whose bytes and config are both registered under
    the same name already is skipped, so importing twice is harmless, while an edited
    ``config.pbtxt`` makes a new version (its artifact is stored once). With ``alias``, it
    points at each model's newest imported version, in the same transaction. A ``latest`` or
    ``all`` version policy is kept as each version's POLICY_TAG, which ``engine serve
    --registry`` follows; a ``specific`` one only selects the folders imported.
    """
    from engine.registry import NewVersion

    if alias is not None:
        validate_name(alias, "alias")
    models = scan_repository(root)
    if not models:
        # As `engine serve --model-repository` refuses it: most likely a wrong path.
        raise ModelLoadError(
            f"model repository {str(root)!r} has no model (expected <name>/<version>/model.onnx)"
        )
    # register_all checks every file (the copy it stores) before it registers any: the
    # all-or-nothing promise, without loading each model twice.
    selected = [(model, item) for model in models for item in model.versions]
    outcomes = registry.register_all(
        [
            NewVersion(
                model.name,
                item.path,
                config=model.config,
                tags=_import_tags(model, item),
                label=f"{model.name}/{item.version}/{item.path.name}",
            )
            for model, item in selected
        ],
        alias=alias,
        skip_registered=True,
    )
    results = []
    for (model, item), (record, skipped) in zip(selected, outcomes):
        # Registered now, or matched to a version whose number reads (register_all skips
        # only those): never None here.
        assert record.version is not None
        results.append(ImportResult(model.name, item.version, record.version, skipped))
    return results
