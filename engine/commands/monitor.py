"""``engine monitor ...``: Prometheus alerting rules and the HTML monitoring report."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from engine.errors import InvalidConfigError, ModelNotFoundError

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``monitor`` and its subcommands to the ``engine`` parser."""
    monitor = subparsers.add_parser(
        "monitor",
        help="drift monitoring: alerting rules, reports",
        description="Prometheus alerting rules and HTML reports of a model's monitoring data.",
    )
    sub = monitor.add_subparsers(dest="monitor_command", metavar="COMMAND", required=True)

    rules = sub.add_parser(
        "rules",
        help="print Prometheus alerting rules (YAML)",
        description="Print Prometheus alerting rules for the engine's "
        "metrics; load them with rule_files: in prometheus.yml.",
    )
    # `off` as in `engine serve --psi-threshold X|off`: no rule for a test the server skips.
    rules.add_argument(
        "--psi", type=drift_threshold, default=0.2, metavar="X|off", help="PSI threshold (default 0.2)"
    )
    rules.add_argument(
        "--ks", type=drift_threshold, default=0.15, metavar="X|off", help="KS threshold (default 0.15)"
    )
    rules.add_argument(
        "--chi2-pvalue",
        type=drift_threshold,
        default=1e-3,
        metavar="P|off",
        help="chi-square p-value threshold (default 0.001)",
    )
    rules.add_argument(
        "--error-ratio", type=float, default=0.05, help="share of failing requests (default 0.05)"
    )
    rules.add_argument(
        "--latency-p99-s", type=float, default=0.5, help="p99 latency in seconds (default 0.5)"
    )
    rules.add_argument(
        "--queue-depth", type=int, default=1000, help="queued requests (default 1000)"
    )
    rules.add_argument(
        "--for",
        dest="for_duration",
        default="10m",
        help="how long drift must last before firing: a Prometheus duration such as 30s, "
        "10m, 1h30m (default 10m)",
    )
    rules.set_defaults(handler=_rules)

    report = sub.add_parser(
        "report",
        help="write an HTML report of a model's monitoring data",
        description="One self-contained HTML file: latency, requests and "
        "errors, drift per feature, predictions. Without --logs and --history, a model or "
        "version that neither the registry nor the home's logs and history know is an error, "
        "as an unknown alias is. So is one with nothing recorded (in the --since period): "
        "no prediction logs and no drift history of it; no file is written then. The command "
        "only reads: it never creates the registry database.",
    )
    report.add_argument("model", metavar="MODEL_REF", help="name, name:VERSION or name@ALIAS")
    report.add_argument("--since", help="a duration back from now (90m, 24h, 7d) or an ISO time")
    report.add_argument(
        "--out", type=Path, default=Path("report.html"), help="output file (default report.html)"
    )
    report.add_argument(
        "--logs", type=Path, help="Parquet prediction logs (default $ENGINE_HOME/logs/<model>)"
    )
    report.add_argument(
        "--history",
        type=Path,
        help="drift history folder (default $ENGINE_HOME/monitoring/<model>)",
    )
    report.add_argument("--home", help="engine home (default: $ENGINE_HOME or ~/.engine)")
    report.add_argument("--registry-url", help="registry database URL, to resolve an alias")
    report.add_argument(
        "--remove-orphans",
        action="store_true",
        help="first remove the *.parquet.partial files (of every version) in the logs folder "
        "that no running writer holds and nothing wrote to for two hours: left by a server "
        "that was killed, they can never be read, and their records are lost. Files a running "
        "server writes are kept",
    )
    report.set_defaults(handler=_report)


def drift_threshold(text: str) -> float | None:
    """argparse type of a drift threshold, for ``engine serve`` and ``engine monitor rules``:
    a number, or ``off`` (None: the test is not applied, and has no rule)."""
    if text.strip().lower() == "off":
        return None
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number or 'off'; was {text!r}") from None


def _rules(args: argparse.Namespace) -> int:
    from engine.monitoring.monitor import DriftThresholds
    from engine.monitoring.rules import RuleSettings, alerting_rules

    settings = RuleSettings(
        drift=DriftThresholds(psi=args.psi, ks=args.ks, chi2_pvalue=args.chi2_pvalue),
        error_ratio=args.error_ratio,
        latency_p99_s=args.latency_p99_s,
        queue_depth=args.queue_depth,
        for_duration=args.for_duration,
    )
    sys.stdout.write(alerting_rules(settings))
    return 0


def _report(args: argparse.Namespace) -> int:
    from engine.names import parse_ref

    try:
        from engine.monitoring.paths import logs_dir, monitoring_dir
        from engine.monitoring.prediction_log import remove_orphaned_partials
        from engine.monitoring.report import parse_since, write_report
    except ModuleNotFoundError as exc:  # pyarrow / matplotlib come with the `monitor` extra
        raise InvalidConfigError(
            f"engine monitor report needs {exc.name!r}: install the "
            "'monitor' extra (pip install 'engine[monitor]')"
        ) from None
    ref = parse_ref(args.model)
    _check_folder("--logs", args.logs)
    _check_folder("--history", args.history)
    version = str(ref.version) if ref.version is not None else None
    if ref.alias is not None:
        from engine.registry import Registry

        _require_registry(ref, args)
        with Registry(args.home, args.registry_url) as registry:
            record = registry.get(ref)
        if record.version is None:  # its row's number was changed outside the engine
            raise ModelNotFoundError(
                f"model {ref.name!r} alias {ref.alias!r} cannot be followed: points at a "
                f"version whose number cannot be read: {record.read_errors['version']}; fix "
                f"the row, or give MODEL_REF {ref.name} to report on every version"
            )
        version = str(record.version)
    now_ms = int(datetime.now(timezone.utc).timestamp() * 1000)
    since_ms = parse_since(args.since, now_ms) if args.since else None
    logs = args.logs or logs_dir(ref.name, args.home)
    history = args.history or monitoring_dir(ref.name, args.home)
    if ref.alias is None and args.logs is None and args.history is None:
        _check_known(ref, args, has_data=_has_files(logs) or _has_files(history))
    if args.remove_orphans and logs.is_dir():
        for path, size in remove_orphaned_partials(logs):
            print(
                f"removed {str(path)!r} ({size} bytes): left open by a prediction log writer "
                "that died; unreadable, its records are lost",
                file=sys.stderr,
            )
    report = write_report(
        args.out,
        ref.name,
        write_empty=False,
        logs_dir=logs,
        monitoring_dir=history,
        version=version,
        since_ms=since_ms,
        now_ms=now_ms,
    )
    if report.recorded_nothing:
        # An empty page would pass for a report (exit 0, a file to open) of a model that is
        # fine; a mistyped version, home or --since, or a server logging nothing, looks the
        # same. Say what is missing instead, and fail, as for an unknown version.
        message = _nothing_recorded(ref.name, version, since_ms, logs, history)
        if Path(args.out).exists():
            message += f" ({str(args.out)!r} is an earlier file, left as it was)"
        print(f"error: {message}", file=sys.stderr)
        return 1
    print(f"wrote {args.out} ({len(report.images)} plots)")
    for note in report.notes:  # files the report could not use (also said on the page)
        print(f"note: {note}", file=sys.stderr)
    return 0


def _check_known(ref: Any, args: argparse.Namespace, *, has_data: bool) -> None:
    """Raise ModelNotFoundError for a model or version nobody knows: its report would be
    empty, like that of a model that saw no traffic. The registry knows the versions of the
    models it holds; a model it does not hold (served from a repository folder) is known by
    its prediction logs or drift history under the home. Not called when --logs or --history
    names the data: those folders are then what the report is about."""
    from engine.registry import Registry
    from engine.registry.registry import missing_database

    if has_data and ref.version is None:
        return  # something to report on; no need for the registry
    missing = missing_database(args.home, args.registry_url)
    if missing is not None:  # opening it would create it: nothing is registered there
        if has_data:
            return
        raise ModelNotFoundError(
            f"no model named {ref.name!r} (there is no registry database "
            f"{str(missing)!r}), and it has no prediction logs or drift history; check the "
            "name, --home or --registry-url, or give --logs / --history"
        )
    with Registry(args.home, args.registry_url) as registry:
        try:
            registry.versions(ref.name)
        except ModelNotFoundError as exc:
            if has_data:
                return
            raise ModelNotFoundError(
                f"{exc}, and it has no prediction logs or drift history; check the name, "
                "--home or --registry-url, or give --logs / --history"
            ) from None
        if ref.version is not None:
            try:
                registry.get(ref)
            except ModelNotFoundError as exc:  # "model 'm' has no version 7"
                raise ModelNotFoundError(
                    f"{exc}; `engine models versions {ref.name}` lists its versions"
                ) from None


def _require_registry(ref: Any, args: argparse.Namespace) -> None:
    """Raise ModelNotFoundError if the registry database is a SQLite file that does not
    exist: opening the registry would create it, and a report only reads."""
    from engine.registry.registry import missing_database

    missing = missing_database(args.home, args.registry_url)
    if missing is not None:
        raise ModelNotFoundError(
            f"no model named {ref.name!r} (there is no registry database {str(missing)!r}), "
            f"so alias {ref.alias!r} cannot be followed; check the name, --home or "
            "--registry-url"
        )


def _nothing_recorded(
    model: str, version: str | None, since_ms: int | None, logs: Path, history: Path
) -> str:
    what = f"model {model!r}" + (f" version {version}" if version is not None else "")
    when = ""
    if since_ms is not None:
        since = datetime.fromtimestamp(since_ms / 1000, timezone.utc)
        when = f" since {since:%Y-%m-%d %H:%M:%S} UTC"
    return (
        f"no traffic recorded for {what}{when}: no prediction logs in {str(logs)!r} and no "
        f"drift history in {str(history)!r}; no report written. A version that has not "
        "served yet has none; a server logs a sample of requests (engine serve "
        "--log-sample-rate) into files readable once closed, and a drift window once enough "
        "rows arrived"
    )


def _has_files(folder: Path) -> bool:
    return folder.is_dir() and any(folder.iterdir())


def _check_folder(option: str, path: Path | None) -> None:
    """A folder the user named must exist (the defaults under the home may not, yet): an
    empty report for a mistyped path would look like a model that saw no traffic."""
    if path is None:
        return
    if not path.exists():
        raise InvalidConfigError(f"{option} {str(path)!r} does not exist")
    if not path.is_dir():
        raise InvalidConfigError(f"{option} {str(path)!r} is not a folder")
