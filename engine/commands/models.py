"""``engine models ...``: the registry from the command line.

Every subcommand takes ``--home``, ``--registry-url``, ``--artifacts-url`` and ``--json``;
without ``--json`` the output is an aligned table (or ``key: value`` lines for one record).

A version whose stored config, signature or lineage this engine refuses (written by another
release, or edited by hand) is still listed and shown: ``show`` says which value is refused and
why, ``versions`` names it in the REFUSED column, ``lineage`` shows the stored values with a
note, and ``--json`` carries the stored values with ``config_error`` / ``signature_error`` /
``lineage_error``. So is one whose metrics, params, tags or timestamps cannot be read at all
(text that is not JSON, JSON that is no mapping): ``show`` marks each as unreadable and why,
``versions`` names it in the REFUSED column, ``--json`` gives null and ``read_errors``.
So is one whose version number or size is no integer (SQLite keeps any value in an INTEGER
column): ``versions`` and ``show`` print ``?`` or "unreadable" and the column and stored value
(``versions`` under the table), ``list`` prints the alias as ``NAME=?`` and notes under the
table what cannot be read, and ``lineage`` says why it stops at a parent that cannot be found
(``parent_error`` in ``--json``). Rows whose model_id names no model (no other command shows
them) are named by ``list``, under the table (on stderr with ``--json``).
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
import unicodedata
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.commands._urls import artifacts_url
from engine.config import ModelConfig
from engine.errors import (
    InvalidConfigError,
    InvalidModelNameError,
    ModelNotFoundError,
    RegistryError,
)
from engine.names import MAX_VERSION, validate_name
from engine.registry import (
    Lineage,
    ModelVersion,
    Registry,
    UnreadableJSON,
    code_revision,
    fingerprint_file,
)
from engine.registry.registry import missing_database
from engine.repository import (
    POLICY_TAG,
    VersionPolicy,
    import_repository,
    parse_version_policy,
    read_config,
    serving_policy_tag,
)

__all__ = ["register"]

Handler = Callable[[argparse.Namespace], int]

_FINGERPRINT = re.compile(r"sha256:[0-9a-f]{64}")  # what fingerprint_file writes
# A --metric: decimal, ASCII only. float() alone would also take "1_000", " 1", "nan" or "١".
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
# Deepest --param value taken: far beyond real params, far below where JSON encoding and
# decoding (here and in the registry's database layer) exceed Python's recursion limit.
_MAX_PARAM_DEPTH = 100


def register(subparsers: Any) -> None:
    """Add ``models`` and its subcommands to the ``engine`` parser."""
    models = subparsers.add_parser(
        "models",
        help="manage the model registry",
        description="Register, inspect and promote model versions.",
    )
    sub = models.add_subparsers(dest="models_command", metavar="COMMAND", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--home", help="registry home (default: $ENGINE_HOME or ~/.engine)")
    common.add_argument(
        "--registry-url",
        help="SQLAlchemy database URL (default: $ENGINE_REGISTRY_URL, else SQLite under the home)",
    )
    common.add_argument(
        "--artifacts-url",
        type=artifacts_url,
        help="fsspec URL of an artifact store shared by several machines, e.g. "
        "s3://bucket/models or file:///mnt/nfs/artifacts (default: $ENGINE_ARTIFACTS_URL, else "
        "the home's artifacts folder)",
    )
    common.add_argument("--json", action="store_true", help="print JSON instead of a table")

    def add(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        parser: argparse.ArgumentParser = sub.add_parser(
            name, parents=[common], help=help_text, description=help_text
        )
        # Only the commands that register open a registry that does not exist yet (creating
        # it); the others refuse, so that a mistyped --home or URL is said, not created.
        parser.set_defaults(handler=handler, creates_registry=handler in (_register, _import_repo))
        return parser

    p = add("register", _register, "register an ONNX file as the next version of a model")
    p.add_argument("name")
    p.add_argument("path", type=Path)
    p.add_argument("--alias", help="point this alias at the new version")
    p.add_argument(
        "--config",
        type=Path,
        help="model config: a JSON file (ModelConfig fields) or a Triton config.pbtxt",
    )
    p.add_argument("--description")
    p.add_argument("--metric", action="append", default=[], metavar="KEY=NUMBER")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="VALUE is parsed as JSON when it can be, else kept as a string",
    )
    p.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE")
    data = p.add_mutually_exclusive_group()
    data.add_argument("--data", type=Path, help="training data file to fingerprint (sha256)")
    data.add_argument(
        "--data-fingerprint",
        help="training data fingerprint, if already known: sha256: and 64 lowercase hex digits",
    )
    p.add_argument(
        "--code-revision",
        help="git commit of the training code; 'auto' reads it from the current folder "
        "(an error outside a git checkout)",
    )
    p.add_argument("--parent", help="the version this one derives from, as NAME:VERSION")
    p.add_argument(
        "--transform-spec",
        type=Path,
        help="JSON file of the fitted transforms (an engine.transforms spec, checked as the "
        "transforms of a --config are)",
    )
    p.add_argument("--created-by", help="who registers it (default: the OS user)")

    add("list", _list, "list models")

    p = add("show", _show, "show one version: name, name:VERSION or name@ALIAS")
    p.add_argument("ref")

    p = add("versions", _versions, "list a model's versions")
    p.add_argument("name")

    p = add("alias", _alias, "point an alias at a version, or remove it with --delete")
    p.add_argument("name")
    p.add_argument("alias")
    p.add_argument("version", type=_version, nargs="?")
    p.add_argument("--delete", action="store_true", help="remove the alias")

    p = add("archive", _archive, "archive a version (kept, but never 'latest')")
    p.add_argument("name")
    p.add_argument("version", type=_version)

    p = add("unarchive", _unarchive, "make an archived version ready again")
    p.add_argument("name")
    p.add_argument("version", type=_version)

    p = add("delete", _delete, "delete a version (refused while an alias points at it)")
    p.add_argument("name")
    p.add_argument("version", type=_version)

    p = add("lineage", _lineage, "show a version and its ancestors")
    p.add_argument("ref")

    p = add("import-repo", _import_repo, "register the models of a Triton-style repository")
    p.add_argument("directory", type=Path)
    p.add_argument("--alias", help="point this alias at each model's newest imported version")

    p = add("gc", _gc, "delete unreferenced artifacts and leftover temp files")
    p.add_argument(
        "--min-age-s",
        type=_non_negative,
        default=3600.0,
        help="only files older than this (default 3600: spares registrations in flight)",
    )
    p.add_argument(
        "--claim-store",
        action="store_true",
        help="record this registry as the artifact store's only user first (for a store filled "
        "before registries were recorded in it; refused if another registry is recorded)",
    )


# ---- handlers ------------------------------------------------------------------------------


def _auto_revision() -> str:
    """``--code-revision auto``: the current folder's git commit. Asked for explicitly, so not
    finding one is an error before anything is registered, never a silently empty field."""
    revision = code_revision()
    if revision is None:
        raise InvalidConfigError(
            f"--code-revision auto: {str(Path.cwd())!r} is not inside a git checkout (or git is "
            "not installed), so there is no revision to record; run from the training code's "
            "checkout, pass the revision itself (--code-revision COMMIT), or leave the option out"
        )
    return revision


def _register(args: argparse.Namespace) -> int:
    _refuse_control_characters("--code-revision", args.code_revision)
    _refuse_control_characters("--created-by", args.created_by)
    _refuse_control_characters("--description", args.description)
    if args.created_by is not None and not args.created_by.strip():
        # The registry would record the OS user instead: a substitution nobody asked for.
        raise InvalidConfigError(
            f"--created-by must not be empty; was {args.created_by!r}; leave the option out to "
            "record the OS user"
        )
    metrics = {k: _number(k, v) for k, v in _pairs(args.metric, "--metric")}
    params = {k: _param(k, v) for k, v in _pairs(args.param, "--param")}
    tags = dict(_pairs(args.tag, "--tag"))
    for key, value in tags.items():
        _refuse_control_characters(f"the value of --tag {key!r}", value)
    if args.data_fingerprint is not None and not _FINGERPRINT.fullmatch(args.data_fingerprint):
        raise InvalidConfigError(
            f"--data-fingerprint must be sha256: and 64 lowercase hex digits; was "
            f"{args.data_fingerprint!r} (or give the file itself with --data)"
        )
    lineage = Lineage(
        data_fingerprint=(_fingerprint(args.data) if args.data else args.data_fingerprint),
        code_revision=(_auto_revision() if args.code_revision == "auto" else args.code_revision),
        parent=args.parent,
        transform_spec=_transform_spec(args.transform_spec) if args.transform_spec else None,
        created_by=args.created_by,
    )
    config = _config_file(args.config, args.name, tags)  # may add the policy tag
    with _open(args) as registry:
        record = registry.register(
            args.name,
            args.path,
            config=config,
            metrics=metrics,
            params=params,
            tags=tags,
            lineage=lineage,
            alias=args.alias,
            description=args.description,
        )
    if args.json:
        _print_json(record.to_dict())
    else:
        print(
            f"registered {record.ref} (sha256 {record.sha256[:12]})"
            + (f", alias {args.alias}" if args.alias else "")
        )
    return 0


def _list(args: argparse.Namespace) -> int:
    with _open(args) as registry:
        models = registry.list()
        orphans = registry.orphans()
    # Rows no model shows (their model_id was damaged): said here, or nobody would see them.
    count = "1 row belongs" if len(orphans) == 1 else f"{len(orphans)} rows belong"
    lost = (
        f"{count} to no model (their model_id was changed outside the engine; no other "
        f"command shows them):"
    )
    if args.json:
        _print_json([m.to_dict() for m in models])
        if orphans:  # stdout stays the list of models
            details = "; ".join(f"{o.where}: {o.error}" for o in orphans)
            print(f"warning: {lost} {details}", file=sys.stderr)
        return 0
    _print_table(
        ["NAME", "LATEST", "VERSIONS", "ALIASES", "UPDATED_UTC"],
        [
            [
                m.name,
                _or_dash(m.latest_version),
                str(m.version_count),
                ", ".join(f"{a}={_or_unknown(v)}" for a, v in m.aliases.items()) or "-",
                _time(m.updated_at),
            ]
            for m in models
        ],
    )
    for m in models:
        for what, error in m.read_errors.items():
            print(f"{m.name}: {what}: {error}")
    if orphans:
        print(lost)
        for o in orphans:
            print(f"  {o.where}: {o.error}")
    return 0


def _show(args: argparse.Namespace) -> int:
    with _open(args) as registry:
        record = registry.get(args.ref)
        parent = _parent_state(registry, record.stored_lineage.get("parent"))
    if args.json:
        _print_json(record.to_dict())
        return 0
    lin = record.stored_lineage  # as stored: the "lineage" line says if it is refused
    _print_fields(
        [
            ("name", record.name),
            ("version", _readable(record, "version", str(record.version))),
            ("status", record.status),
            ("aliases", ", ".join(record.aliases) or "-"),
            ("sha256", record.sha256),
            ("size_bytes", _readable(record, "size_bytes", str(record.size_bytes))),
            ("created_at", _readable(record, "created_at", _time(record.created_at, " UTC"))),
            ("created_by", _text(lin["created_by"])),
            ("description", record.description or "-"),
            ("metrics", _readable(record, "metrics", _inline(record.metrics))),
            ("params", _readable(record, "params", _inline(record.params, _param_text))),
            ("tags", _readable(record, "tags", _inline(record.tags))),
            ("parent", parent),
            ("data_fingerprint", _text(lin["data_fingerprint"])),
            ("code_revision", _text(lin["code_revision"])),
            ("lineage", _state(record.lineage_error, "shown as stored")),
            ("config", _config_state(record)),
            ("signature", _state(record.signature_error)),
        ]
    )
    if record.signature_error is not None:
        return 0  # no tensors to list: the signature line says why
    print()
    _print_table(
        ["TENSOR", "NAME", "DTYPE", "SHAPE"],
        [
            [kind, t.name, t.dtype, str(list(t.shape))]
            for kind, tensors in (("input", record.inputs), ("output", record.outputs))
            for t in tensors
        ],
    )
    return 0


def _versions(args: argparse.Namespace) -> int:
    with _open(args) as registry:
        records = registry.versions(args.name)
    if args.json:
        _print_json([r.to_dict() for r in records])
        return 0
    _print_table(
        ["VERSION", "STATUS", "ALIASES", "SHA256", "SIZE", "CREATED_UTC", "REFUSED",
         "DESCRIPTION"],
        [
            [
                _or_unknown(r.version),
                r.status,
                ", ".join(r.aliases) or "-",
                r.sha256[:12],
                _or_unknown(r.size_bytes),
                _time(r.created_at),
                _refused(r),
                r.description or "-",
            ]
            for r in records
        ],
    )
    for r in records:  # these cells show only "?": say what is stored instead
        for what in ("version", "size_bytes"):
            if what in r.read_errors:
                print(f"{r.ref}: {r.read_errors[what]}")
    return 0


def _alias(args: argparse.Namespace) -> int:
    validate_name(args.name)  # else the lookup says only "no model named 'm:1'"
    with _open(args) as registry:
        if args.delete:
            if args.version is not None:
                raise InvalidConfigError("give either a VERSION or --delete, not both")
            registry.remove_alias(args.name, args.alias)
            result: dict[str, Any] = {"name": args.name, "alias": args.alias, "version": None}
            message = f"removed alias {args.name}@{args.alias}"
        else:
            if args.version is None:
                raise InvalidConfigError("give the VERSION the alias should point at, or --delete")
            record = registry.set_alias(args.name, args.alias, args.version)
            result = {"name": args.name, "alias": args.alias, "version": record.version}
            message = f"{args.name}@{args.alias} -> {record.ref}"
            if record.config_error is not None:
                # Aliases are metadata (an older release sharing the registry may still load
                # it), so this is allowed; but this engine will refuse to serve it.
                print(
                    f"warning: this engine cannot load {record.ref}: its stored config is "
                    f"refused: {record.config_error}",
                    file=sys.stderr,
                )
    if args.json:
        _print_json(result)
    else:
        print(message)
    return 0


def _archive(args: argparse.Namespace) -> int:
    validate_name(args.name)  # else the lookup says only "no model named 'm:1'"
    with _open(args) as registry:
        record = registry.archive(args.name, args.version)
    if args.json:
        _print_json(record.to_dict())
    else:
        print(f"archived {record.ref}")
    return 0


def _unarchive(args: argparse.Namespace) -> int:
    validate_name(args.name)
    with _open(args) as registry:
        record = registry.unarchive(args.name, args.version)
    if args.json:
        _print_json(record.to_dict())
    else:
        print(f"{record.ref} is {record.status}")
    return 0


def _delete(args: argparse.Namespace) -> int:
    validate_name(args.name)  # else the lookup says only "no model named 'm:1'"
    with _open(args) as registry:
        registry.delete(args.name, args.version)
    if args.json:
        _print_json({"name": args.name, "version": args.version, "deleted": True})
    else:
        print(f"deleted {args.name}:{args.version}")
    return 0


def _lineage(args: argparse.Namespace) -> int:
    with _open(args) as registry:
        found = registry.lineage_chain(args.ref)
    chain = found.versions
    if args.json:
        _print_json(
            [
                {
                    "ref": r.ref,
                    **r.to_dict()["lineage"],
                    "lineage_error": r.lineage_error,
                    "created_at": r.to_dict()["created_at"],
                    "read_errors": dict(r.read_errors),
                    # Why the chain lists no parent after this version, when it has one.
                    "parent_error": found.stopped if r is chain[-1] else None,
                }
                for r in chain
            ]
        )
        return 0
    _print_table(
        ["REF", "PARENT", "DATA", "CODE", "CREATED_BY", "CREATED_UTC", "TRANSFORMS"],
        [
            [
                r.ref,
                _text(r.stored_lineage["parent"]),
                _short(_text(r.stored_lineage["data_fingerprint"])),
                _short(_text(r.stored_lineage["code_revision"])),
                _text(r.stored_lineage["created_by"]),
                _time(r.created_at),
                _transforms(r.stored_lineage["transform_spec"]),
            ]
            for r in chain
        ],
    )
    for r in chain:
        if r.lineage_error is not None:
            print(f"{r.ref}: lineage refused by this engine (shown as stored): {r.lineage_error}")
    if found.stopped is not None:
        print(f"the chain stops at {chain[-1].ref}: {found.stopped}")
    return 0


def _import_repo(args: argparse.Namespace) -> int:
    with _open(args) as registry:
        results = import_repository(registry, args.directory, alias=args.alias)
    if args.json:
        _print_json([r.to_dict() for r in results])
        return 0
    _print_table(
        ["NAME", "REPO_VERSION", "REGISTERED", "RESULT"],
        [
            [
                r.name,
                str(r.repository_version),
                f"{r.name}:{r.registered_version}",
                "already registered" if r.skipped else "registered",
            ]
            for r in results
        ],
    )
    return 0


def _gc(args: argparse.Namespace) -> int:
    with _open(args) as registry:
        removed = registry.gc(min_age_s=args.min_age_s, claim_store=args.claim_store)
    if args.json:
        _print_json({"removed": removed})
    else:
        print(f"removed {len(removed)} file(s)")
    return 0


# ---- helpers -------------------------------------------------------------------------------


@contextmanager
def _open(args: argparse.Namespace) -> Iterator[Registry]:
    if not getattr(args, "creates_registry", True):
        missing = missing_database(args.home, args.registry_url)
        if missing is not None:
            raise RegistryError(
                f"there is no registry database {str(missing)!r}, so nothing is registered "
                "there (check --home and --registry-url, or ENGINE_HOME and "
                "ENGINE_REGISTRY_URL); only 'register' and 'import-repo' create one"
            )
    with Registry(
        home=args.home, url=args.registry_url, artifacts_url=args.artifacts_url
    ) as registry:
        yield registry


def _fingerprint(path: Path) -> str:
    try:
        return fingerprint_file(path)
    except OSError as exc:
        raise InvalidConfigError(
            f"--data {str(path)!r}: {exc.strerror or exc}; give the training data file, or "
            "its fingerprint with --data-fingerprint"
        ) from None


def _transform_spec(path: Path) -> Any:
    """The spec's JSON, refused as a --config's transforms would be: the lineage would
    otherwise record (and ``lineage`` show) a spec nothing can apply."""
    from engine.transforms.spec import TransformSpec

    data = _json_file(path, "--transform-spec")
    try:
        TransformSpec.from_dict(data)
    except InvalidConfigError as exc:
        raise InvalidConfigError(
            f"--transform-spec {str(path)!r}: {exc}; give the JSON form of a fitted "
            "engine.transforms spec"
        ) from None
    return data


def _refuse_control_characters(option: str, value: str | None) -> None:
    # A newline or escape would break the one-line-per-version tables that show it.
    if value is not None and any(unicodedata.category(c) == "Cc" for c in value):
        raise InvalidConfigError(
            f"{option} must not contain control characters (newlines, tabs, escapes); was {value!r}"
        )


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds; was {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0 seconds; was {text!r}")
    return value


def _version(text: str) -> int:
    # ASCII only: str.isdigit() and int() also take other scripts' digits ("١" is 1).
    if re.fullmatch(r"[1-9][0-9]*", text) is None:
        raise argparse.ArgumentTypeError(
            f"version must be a positive integer in ASCII digits 0-9 without leading zeros; "
            f"was {text!r}"
        )
    if len(text) > len(str(MAX_VERSION)) or int(text) > MAX_VERSION:
        raise argparse.ArgumentTypeError(f"version must be in [1, {MAX_VERSION}]; was {text}")
    return int(text)


def _pairs(items: Sequence[str], option: str) -> list[tuple[str, str]]:
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidConfigError(f"{option} needs KEY=VALUE; was {item!r}")
        _refuse_control_characters(f"{option} key", key)
        if key in out:  # a dict of them would keep the last one silently
            raise InvalidConfigError(
                f"{option} {key!r} is given twice ({out[key]!r}, then {value!r}); give each key "
                "once"
            )
        out[key] = value
    return list(out.items())


def _number(key: str, text: str) -> float:
    value = float(text) if _DECIMAL.fullmatch(text) else math.nan
    if not math.isfinite(value):  # not decimal, or too large for a float (1e999)
        raise InvalidConfigError(
            f"--metric {key!r} must be a finite number such as 0.93, -2 or 1e-3 (ASCII digits, "
            f"no '_'); was {text!r}"
        )
    return value


def _param(key: str, text: str) -> Any:
    """A --param value: its JSON when it is JSON, else the text itself."""
    too_deep = InvalidConfigError(
        f"--param {key}: the value nests more than {_MAX_PARAM_DEPTH} levels of lists or "
        "objects; give a flatter value"
    )
    try:
        value = json.loads(text)
    except RecursionError:
        raise too_deep from None
    except ValueError:
        return text
    if _depth(value) > _MAX_PARAM_DEPTH:
        raise too_deep
    try:
        json.dumps(value, allow_nan=False)
    except ValueError:  # Python's json reads NaN and Infinity, and 1e999 as inf
        shown = text if len(text) <= 80 else text[:80] + "..."
        raise InvalidConfigError(
            f"--param {key}={shown}: NaN and infinite numbers cannot be stored (1e999 is "
            'infinite as a float); to keep the text, give it as a JSON string such as "NaN"'
        ) from None
    return value


def _depth(value: Any) -> int:
    """How many lists or objects deep ``value`` nests (0 for a scalar), without recursing."""
    deepest, stack = 0, [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (list, dict)):
            deepest = max(deepest, depth + 1)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


def _policy_or_none(text: str) -> VersionPolicy | None:
    # None for a tag that does not parse: the registry refuses it, naming the tag.
    try:
        return parse_version_policy(text)
    except InvalidConfigError:
        return None


def _json_file(path: Path, option: str) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidConfigError(
            f"{option} {str(path)!r}: cannot read: {exc.strerror or exc}"
        ) from None
    except ValueError as exc:  # not UTF-8
        raise InvalidConfigError(f"{option} {str(path)!r}: cannot read: {exc}") from None
    try:
        return json.loads(text)
    except RecursionError:
        raise InvalidConfigError(
            f"{option} {str(path)!r}: the JSON is nested too deeply to read"
        ) from None
    except ValueError as exc:
        raise InvalidConfigError(f"{option} {str(path)!r}: not JSON: {exc}") from None


def _config_file(path: Path | None, name: str, tags: dict[str, str]) -> ModelConfig | None:
    """The --config file's config. A config.pbtxt's version policy goes into ``tags`` as the
    serving policy tag, which `engine serve --registry` reads (not a config field)."""
    if path is None:
        return None
    if path.suffix == ".pbtxt":
        config, policy, _ = read_config(path, name)
        if policy.kind == "specific":
            raise InvalidConfigError(
                f"--config {str(path)!r}: version_policy specific names version folders of a "
                f"model repository, not registry versions; leave it out, and give the "
                f"registry's versions to serve with --tag {POLICY_TAG}=1,3"
            )
        text = serving_policy_tag(policy)
        given = tags.get(POLICY_TAG)
        given_policy = _policy_or_none(given) if given is not None else None
        if text is not None and given_policy is not None and given_policy != policy:
            raise InvalidConfigError(
                f"--config {str(path)!r} has version_policy {text!r} but --tag "
                f"{POLICY_TAG}={given}; give one of them"
            )
        if text is not None:
            tags.setdefault(POLICY_TAG, text)
        return config
    data = _json_file(path, "--config")
    if not isinstance(data, dict):
        raise InvalidConfigError(
            f"--config {str(path)!r} must hold a JSON object of ModelConfig fields"
        )
    return ModelConfig.from_dict(data)


def _print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2)
    sys.stdout.write("\n")


def _print_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]
    for row in [list(headers), *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


def _print_fields(pairs: Sequence[tuple[str, str]]) -> None:
    width = max(len(k) for k, _ in pairs)
    for key, value in pairs:
        print(f"{key + ':':<{width + 1}} {value}")


# Longest value `show` prints in its one-line form; --json shows every value whole.
_SHOWN_VALUE_CHARS = 200


def _inline(mapping: dict[str, Any], shown: Callable[[Any], str] = str) -> str:
    """``k=v, ...`` on one line, each value cut at _SHOWN_VALUE_CHARS (a trained model's
    reference profile is kilobytes of JSON in its params)."""
    return ", ".join(f"{k}={_cut(shown(v))}" for k, v in mapping.items()) or "-"


def _param_text(value: Any) -> str:
    """A param as ``--param`` takes it: compact JSON, but a string bare when ``--param``
    would keep that text as this same string (it is no JSON, and has no control character
    to break the line)."""
    if isinstance(value, str) and not any(unicodedata.category(c) == "Cc" for c in value):
        try:
            json.loads(value)
        except ValueError:
            return value
        except RecursionError:
            pass  # JSON-like text, so quoted
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _cut(text: str) -> str:
    if len(text) <= _SHOWN_VALUE_CHARS:
        return text
    return f"{text[:_SHOWN_VALUE_CHARS]}... ({len(text)} characters; --json shows all)"


def _config_state(record: ModelVersion) -> str:
    if record.config_error is None:
        return "valid"
    return f"refused by this engine, so it cannot be loaded: {record.config_error}"


def _state(error: str | None, note: str = "") -> str:
    if error is None:
        return "valid"
    return f"refused by this engine{f' ({note})' if note else ''}: {error}"


def _refused(record: ModelVersion) -> str:
    """Which stored values of ``record`` this engine refuses or cannot read, or "-"."""
    errors = (
        ("config", record.config_error),
        ("signature", record.signature_error),
        ("lineage", record.lineage_error),
    )
    refused = [what for what, error in errors if error is not None]
    return ",".join([*refused, *record.read_errors]) or "-"


def _readable(record: ModelVersion, what: str, shown: str) -> str:
    """``shown``, or why the stored value of ``what`` cannot be read (never an empty value)."""
    error = record.read_errors.get(what)
    return shown if error is None else f"unreadable: {error}"


def _transforms(stored: Any) -> str:
    if isinstance(stored, UnreadableJSON):
        return "unreadable"  # the lineage note under the table says why
    return "yes" if stored else "-"


def _parent_state(registry: Registry, parent: Any) -> str:
    """The stored parent, and whether it is still registered: a parent may be deleted after
    its children were registered (``models lineage`` then stops there)."""
    if not isinstance(parent, str) or not parent:
        return _text(parent)
    try:
        registry.get(parent)
    except (ModelNotFoundError, InvalidModelNameError):
        return f"{parent} (no longer registered)"
    return parent


def _text(value: Any) -> str:
    """A stored value for a table cell ("-" when empty); not necessarily a string when this
    engine refuses the record it came from."""
    return "-" if value is None or value == "" else str(value)


def _short(value: str) -> str:
    return value if len(value) <= 19 else value[:16] + "..."


def _or_dash(value: int | None) -> str:
    return "-" if value is None else str(value)


def _or_unknown(value: int | None) -> str:
    return "?" if value is None else str(value)  # None: unreadable, read_errors says why


def _time(value: datetime | None, zone: str = "") -> str:
    """A stored time (UTC; tables say so in their header), or "?" for one unreadable."""
    return "?" if value is None else value.strftime("%Y-%m-%d %H:%M:%S") + zone
