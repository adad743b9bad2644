"""``engine serve``: start the C++ gRPC server, load and warm the models, serve /metrics, and
drain on SIGTERM/SIGINT.

Order of events (each step fails fast with a clear error):

1. read TLS files and the token file;
2. bind the gRPC port (a taken port is an error: SO_REUSEPORT is off) and the metrics port;
   health says NOT_SERVING and ServerReady false from here;
3. load and warm every model, hand each to the data plane (with ``--registry``: the models
   that have the alias, then a background watcher follows alias moves; see
   :mod:`engine.server.registry_serving`);
4. readiness true (health SERVING); print one ``ready`` line to stdout;
5. on SIGTERM or SIGINT: health NOT_SERVING, new requests refused, queued and running requests
   finish, exit 0 (whatever is still open after ``grace_s`` is cancelled). A second signal
   cuts the drain short: what is still queued fails as UNAVAILABLE, the runs under way finish.
"""

from __future__ import annotations

import logging
import math
import signal
import ssl
import threading
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from engine import __version__, _core
from engine._runtime import ensure_runtime
from engine.errors import InvalidConfigError, UnavailableError
from engine.monitoring.monitor import DriftThresholds, MonitorConfig
from engine.monitoring.prediction_log import PredictionLogConfig
from engine.names import validate_name
from engine.settings import get_settings

from .control import ServedModel, ServingControl
from .demo import demo_repository
from .metrics import start_metrics_server
from .registry_serving import RegistryServing, parse_version_policy

__all__ = ["ServeOptions", "serve"]

log = logging.getLogger("engine.server")

# The longest drain taken: a day, far past any orchestrator's grace period.
MAX_GRACE_S = 86400.0


@dataclass(frozen=True)
class ServeOptions:
    """Everything ``engine serve`` takes. ``grpc_port``/``metrics_port`` 0 pick free ports."""

    model_repository: Path | None = None
    demo: bool = False
    registry: bool = False
    alias: str = "production"
    registry_home: Path | None = None
    registry_url: str | None = None
    artifacts_url: str | None = None  # a shared artifact store (Registry's artifacts_url)
    versions: str | None = None  # latest:N | all | 1,3 (see registry_serving)
    poll_s: float = 2.0
    # Monitoring of registry models registered with a reference profile: the sampled
    # prediction log, drift windows, thresholds (None turns a test off), the alert webhook.
    log_sample_rate: float = 0.01
    log_rotate_s: float = PredictionLogConfig.max_file_age_s
    drift_window_rows: int = MonitorConfig.window_rows
    drift_window_s: float = MonitorConfig.window_s
    drift_min_rows: int | None = None  # None: MonitorConfig's, or the window's rows if fewer
    psi_threshold: float | None = DriftThresholds.psi
    ks_threshold: float | None = DriftThresholds.ks
    chi2_pvalue_threshold: float | None = DriftThresholds.chi2_pvalue
    alert_webhook: str | None = None
    log_json: bool = False  # structured JSON log lines
    host: str = "127.0.0.1"
    grpc_port: int = 8001
    metrics_port: int = 8002
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_client_ca: Path | None = None
    auth_token_file: Path | None = None
    max_message_bytes: int = 64 << 20
    max_inputs: int = 64
    max_outputs: int = 64
    max_tensor_elements: int = 1 << 26
    grace_s: float = 30.0

    def __post_init__(self) -> None:
        sources = (self.model_repository is not None) + self.demo + self.registry
        if sources != 1:
            raise InvalidConfigError(
                "give exactly one of --model-repository DIR, --demo and --registry")
        # Told rather than ignored: a registry option given to --demo or --model-repository
        # (a default left as it is cannot be told from one not given, and does no harm).
        registry_only = {
            "--home": self.registry_home is not None,
            "--registry-url": bool(self.registry_url),
            "--artifacts-url": bool(self.artifacts_url),
            "--versions": self.versions is not None,
            "--alias": self.alias != ServeOptions.alias,
            "--poll-s": self.poll_s != ServeOptions.poll_s,
        }
        given = [flag for flag, changed in registry_only.items() if changed]
        if given and not self.registry:
            raise InvalidConfigError(f"{', '.join(given)}: registry options need --registry")
        if self.registry:
            validate_name(self.alias, "alias")
            if self.versions is not None:
                parse_version_policy(self.versions)
        if not 0.0 <= self.log_sample_rate <= 1.0:
            raise InvalidConfigError(
                f"--log-sample-rate must be in [0, 1]; was {self.log_sample_rate}")
        self._check_monitoring()
        if not 0 < self.poll_s <= 3600:
            raise InvalidConfigError(f"--poll-s must be in (0, 3600]; was {self.poll_s}")
        for name in ("grpc_port", "metrics_port"):
            value = getattr(self, name)
            if not 0 <= value <= 65535:
                raise InvalidConfigError(f"{_flag(name)} must be in [0, 65535]; was {value}")
        if not 1024 <= self.max_message_bytes <= 2**31 - 1:
            raise InvalidConfigError(
                f"--max-message-bytes must be in [1024, 2147483647]; was {self.max_message_bytes}")
        for name in ("max_inputs", "max_outputs", "max_tensor_elements"):
            if getattr(self, name) < 1:
                raise InvalidConfigError(f"{_flag(name)} must be >= 1; was {getattr(self, name)}")
        if self.max_tensor_elements > 2**40:
            # Far above any message gRPC accepts (2 GiB); keeps byte counts far from overflow.
            raise InvalidConfigError(
                f"--max-tensor-elements must be <= 2^40; was {self.max_tensor_elements}")
        if not 0 <= self.grace_s <= MAX_GRACE_S:  # also refuses nan
            raise InvalidConfigError(
                f"--grace-s must be a number of seconds in [0, {MAX_GRACE_S:g}]; was "
                f"{self.grace_s}")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise InvalidConfigError("--tls-cert and --tls-key go together")
        if self.tls_client_ca is not None and self.tls_cert is None:
            raise InvalidConfigError("--tls-client-ca (mutual TLS) needs --tls-cert and --tls-key")

    def _check_monitoring(self) -> None:
        monitoring = {
            "--log-sample-rate": self.log_sample_rate != ServeOptions.log_sample_rate,
            "--log-rotate-s": self.log_rotate_s != PredictionLogConfig.max_file_age_s,
            "--drift-window-rows": self.drift_window_rows != MonitorConfig.window_rows,
            "--drift-window-s": self.drift_window_s != MonitorConfig.window_s,
            "--drift-min-rows": self.drift_min_rows is not None,
            "--psi-threshold": self.psi_threshold != DriftThresholds.psi,
            "--ks-threshold": self.ks_threshold != DriftThresholds.ks,
            "--chi2-pvalue-threshold": self.chi2_pvalue_threshold != DriftThresholds.chi2_pvalue,
            "--alert-webhook": self.alert_webhook is not None,
        }
        given = [flag for flag, changed in monitoring.items() if changed]
        if given and not self.registry:
            raise InvalidConfigError(
                f"{', '.join(given)}: monitoring options need --registry (models registered "
                "with a reference profile are monitored)")
        if not (math.isfinite(self.log_rotate_s) and 1 <= self.log_rotate_s <= 86400):
            raise InvalidConfigError(
                f"--log-rotate-s must be in [1, 86400]; was {self.log_rotate_s}")
        if self.drift_window_rows < 1:
            raise InvalidConfigError(
                f"--drift-window-rows must be >= 1; was {self.drift_window_rows}")
        if not (math.isfinite(self.drift_window_s) and self.drift_window_s > 0):
            raise InvalidConfigError(f"--drift-window-s must be > 0; was {self.drift_window_s}")
        if self.drift_min_rows is not None and not (
                1 <= self.drift_min_rows <= self.drift_window_rows):
            raise InvalidConfigError(
                f"--drift-min-rows must be in [1, --drift-window-rows={self.drift_window_rows}]; "
                f"was {self.drift_min_rows}")
        psi = self.psi_threshold
        if psi is not None and not (math.isfinite(psi) and psi > 0):
            raise InvalidConfigError(f"--psi-threshold must be > 0, or off; was {psi}")
        for flag, value in (("--ks-threshold", self.ks_threshold),
                            ("--chi2-pvalue-threshold", self.chi2_pvalue_threshold)):
            if value is not None and not 0 < value < 1:
                raise InvalidConfigError(f"{flag} must be in (0, 1), or off; was {value}")
        if self.alert_webhook is not None:
            url = urllib.parse.urlsplit(self.alert_webhook)
            if url.scheme not in ("http", "https") or not url.hostname:
                raise InvalidConfigError(
                    f"--alert-webhook must be an http:// or https:// URL with a host; was "
                    f"{self.alert_webhook!r}")

    def monitor_config(self) -> MonitorConfig:
        """The drift monitor's windows and thresholds of every monitored model."""
        min_rows = self.drift_min_rows
        if min_rows is None:
            min_rows = min(MonitorConfig.min_rows, self.drift_window_rows)
        return MonitorConfig(
            window_rows=self.drift_window_rows, window_s=self.drift_window_s, min_rows=min_rows,
            thresholds=DriftThresholds(psi=self.psi_threshold, ks=self.ks_threshold,
                                       chi2_pvalue=self.chi2_pvalue_threshold))

    def prediction_log_config(self) -> PredictionLogConfig:
        """The sampled prediction log of every monitored model."""
        return PredictionLogConfig(sample_rate=self.log_sample_rate,
                                   max_file_age_s=self.log_rotate_s)


def _read_text(path: Path | None, what: str) -> str | None:
    if path is None:
        return None
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidConfigError(f"cannot read the {what} {str(path)!r}: {exc}") from None


def _check_tls(options: ServeOptions) -> None:
    """Refuse TLS files that do not hold what they should, naming them: grpc++ only logs
    "Invalid cert chain file" and then fails to listen, which reads as a port problem."""
    if options.tls_cert is None or options.tls_key is None:
        return
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # Python's own minimum key sizes are not gRPC's: only the form and the pairing are checked.
    context.set_ciphers("DEFAULT@SECLEVEL=0")

    def no_password() -> bytes:
        # Else OpenSSL prompts on the terminal for an encrypted key's pass phrase.
        raise InvalidConfigError(
            f"--tls-key {str(options.tls_key)!r} is encrypted; gRPC needs it unencrypted "
            f"(e.g. openssl pkey -in KEY -out PLAIN.key)"
        )

    try:
        context.load_cert_chain(options.tls_cert, options.tls_key, password=no_password)
    except (ssl.SSLError, OSError) as exc:
        raise InvalidConfigError(
            f"--tls-cert {str(options.tls_cert)!r} and --tls-key {str(options.tls_key)!r} are not "
            f"a PEM certificate chain and its private key: {getattr(exc, 'reason', None) or exc}"
        ) from None
    if options.tls_client_ca is not None:
        try:
            context.load_verify_locations(cafile=options.tls_client_ca)
        except (ssl.SSLError, OSError) as exc:
            raise InvalidConfigError(
                f"--tls-client-ca {str(options.tls_client_ca)!r} holds no PEM CA certificate: "
                f"{getattr(exc, 'reason', None) or exc}"
            ) from None


def _read_token(path: Path | None) -> str:
    text = _read_text(path, "auth token file")
    if text is None:
        return ""
    token = text.strip()
    if not token or any(c.isspace() or not c.isprintable() for c in token):
        raise InvalidConfigError(
            f"the auth token file {str(path)!r} must hold one token of printable characters "
            f"without spaces")
    return token


def serve(options: ServeOptions, *, stop: threading.Event | None = None) -> int:
    """Run the server until SIGTERM/SIGINT (or ``stop`` is set), then drain. Returns 0."""
    from engine.monitoring.logging import configure as configure_logging

    configure_logging(json=options.log_json)
    _core.set_server_json_logs(options.log_json)  # the C++ server's own lines, in the same format
    stop = stop or threading.Event()
    cert = _read_text(options.tls_cert, "TLS certificate")
    key = _read_text(options.tls_key, "TLS key")
    client_ca = _read_text(options.tls_client_ca, "TLS client CA")
    _check_tls(options)
    token = _read_token(options.auth_token_file)
    repository = options.model_repository
    if options.demo:
        repository = demo_repository(get_settings().engine_home)
    if repository is not None and not repository.is_dir():
        raise InvalidConfigError(f"model repository {str(repository)!r} is not a folder")

    ensure_runtime()
    control = ServingControl(repository)
    watcher: RegistryServing | None = None
    if options.registry:
        from engine.registry import Registry  # only registry serving needs the database

        policy = parse_version_policy(options.versions) if options.versions else None
        watcher = RegistryServing(
            Registry(home=options.registry_home, url=options.registry_url,
                     artifacts_url=options.artifacts_url), control,
            alias=options.alias, policy=policy, poll_s=options.poll_s,
            monitor_config=options.monitor_config(), webhook_url=options.alert_webhook,
            prediction_log=options.prediction_log_config())
    server = _core.Server(
        host=options.host, port=options.grpc_port, tls_cert_pem=cert, tls_key_pem=key,
        tls_client_ca_pem=client_ca, auth_token=token,
        max_message_bytes=options.max_message_bytes, max_inputs=options.max_inputs,
        max_outputs=options.max_outputs, max_tensor_elements=options.max_tensor_elements,
        version=__version__, control=control)
    control.attach(server)
    grpc_port = server.start()
    metrics = None
    try:
        try:
            metrics, metrics_port = start_metrics_server(
                options.host, options.metrics_port,
                lambda: [(s.name, s.version, s.model) for s in control.served()],
                [watcher.collector, watcher.drift_collector] if watcher is not None else [],
                retired=lambda: [(s.name, s.version, s.model) for s in control.take_retired()])
        except OSError as exc:
            raise UnavailableError(
                f"cannot serve metrics on {options.host}:{options.metrics_port}: {exc.strerror}"
            ) from None
        cut = threading.Event()
        _install_signal_handlers(stop, cut)
        served: list[ServedModel]
        if watcher is not None:
            # Models that gain the alias later are added live, so none is not an error here.
            watcher.sync()
            served = control.served()
            if not served:
                # Cumulative failure counts: right here, after the first sync only.
                failed = sorted(watcher.metrics_snapshot()[0])
                # Aliases whose version cannot be told (a row changed outside the engine):
                # they exist, so say why they are not followed, not that they are absent.
                unfollowed = [
                    f"{s.name}@{options.alias} cannot be followed: "
                    f"{s.read_errors.get(f'alias {options.alias}', 'its version is unknown')}"
                    for s in watcher.registry.list()
                    if options.alias in s.aliases and s.aliases[options.alias] is None
                ]
                if failed:  # the alias exists: say that its versions failed, not that it is absent
                    log.warning("no model is served: %s, with alias %r, failed to load (see the "
                                "errors above); retried every %g s while watching the registry",
                                ", ".join(f"{name}:{version}" for name, version in failed),
                                options.alias, watcher.retry_failed_s)
                if unfollowed:
                    log.warning("no model is served: %s; watching the registry for a change",
                                "; ".join(unfollowed))
                if not failed and not unfollowed:
                    log.warning("no model has alias %r yet; watching the registry for one",
                                options.alias)
            watcher.start()
        else:
            served = control.load_repository()
            if not served:
                raise InvalidConfigError(f"model repository {str(repository)!r} has no model")
        if not stop.is_set():  # told to stop while loading: never announce readiness
            server.set_ready(True)
            names = ", ".join(f"{s.name}:{s.version}" for s in served)
            print(f"engine serve: ready grpc={options.host}:{grpc_port} "
                  f"metrics={options.host}:{metrics_port} models={names}", flush=True)
        while not stop.wait(0.5):
            pass
        if watcher is not None:
            watcher.stop()
        # Health says NOT_SERVING before the line says draining (the drain's own first step,
        # on another thread, could come after a client that read the line checks health).
        server.set_ready(False)
        print(f"engine serve: draining (grace {options.grace_s:g}s)", flush=True)
        _drain(server, options.grace_s, cut)
        print("engine serve: stopped", flush=True)
        return 0
    finally:
        if watcher is not None:
            watcher.stop()
            watcher.registry.close()
        server.stop()
        control.close_all()
        if metrics is not None:
            metrics.shutdown()
            metrics.server_close()


def _flag(field: str) -> str:
    """The command-line option that sets a ServeOptions field: messages name what was typed."""
    return "--" + field.replace("_", "-")


def _drain(server: _core.Server, grace_s: float, cut: threading.Event) -> None:
    """Drain on another thread, so that this one still runs signal handlers: a second signal
    (``cut``) cuts the drain short."""
    failure: list[BaseException] = []

    def run() -> None:
        try:
            server.drain(grace_s)
        except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
            failure.append(exc)

    drainer = threading.Thread(target=run, name="engine-drain", daemon=True)
    drainer.start()
    while drainer.is_alive():
        if cut.wait(0.1):
            print("engine serve: second signal: cutting the drain short (queued requests "
                  "fail as UNAVAILABLE; runs under way finish)", flush=True)
            server.cut_drain()
            break
    drainer.join()
    if failure:
        raise failure[0]


def _install_signal_handlers(stop: threading.Event, cut: threading.Event) -> None:
    if threading.current_thread() is not threading.main_thread():
        return

    def handle(signum: int, frame: FrameType | None) -> None:
        if stop.is_set():  # a second signal while stopping: do not wait out the drain
            cut.set()
        stop.set()

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)

