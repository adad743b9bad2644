"""``engine serve``: the KServe v2 gRPC server (C++ data plane) with Prometheus metrics.

    engine serve --model-repository DIR     Triton layout: <name>/config.pbtxt, <name>/<v>/model.onnx
    engine serve --demo                     a small MLP generated on first run under ENGINE_HOME
    engine serve --registry [--alias A]     every registry model with alias A (default
                                            production), following alias moves live;
                                            --artifacts-url URL for a shared artifact store
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.commands._urls import artifacts_url
from engine.commands.monitor import drift_threshold

if TYPE_CHECKING:
    from engine.server.launcher import ServeOptions

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``serve`` to the ``engine`` parser."""
    p = subparsers.add_parser(
        "serve",
        help="serve models over gRPC (KServe v2 / Triton protocol)",
        description="Serve ONNX models over gRPC with the KServe v2 protocol (stock tritonclient "
                    "works), grpc.health.v1, and Prometheus metrics on a second port. "
                    "SIGTERM/SIGINT drain in-flight requests, then exit 0; a second signal "
                    "cuts the drain short.",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--model-repository", type=Path, metavar="DIR",
                        help="Triton-layout model repository")
    source.add_argument("--demo", action="store_true",
                        help="serve a small demo MLP (generated on first run under ENGINE_HOME)")
    source.add_argument("--registry", action="store_true",
                        help="serve every registry model that has --alias, following alias "
                             "moves live")
    p.add_argument("--log-json", action="store_true",
                   help="structured logs: one JSON object per line, with the request id when "
                        "there is one")
    reg = p.add_argument_group("registry serving (with --registry)")
    reg.add_argument("--alias", default="production",
                     help="alias whose models are served; its target is each model's default "
                          "version (default production)")
    where = reg.add_mutually_exclusive_group()
    where.add_argument("--home", type=Path, metavar="DIR",
                       help="registry home (default $ENGINE_HOME, else ~/.engine)")
    where.add_argument("--registry-url", metavar="URL",
                       help="SQLAlchemy URL of the registry database (default "
                            "$ENGINE_REGISTRY_URL, else SQLite under the home)")
    reg.add_argument("--artifacts-url", metavar="URL", type=artifacts_url,
                     help="fsspec URL of the artifact store shared by several machines, e.g. "
                          "s3://bucket/models (default $ENGINE_ARTIFACTS_URL, else the home's "
                          "artifacts folder); blobs are cached under the home")
    reg.add_argument("--versions", metavar="POLICY",
                     help="versions also served by explicit version: latest:N, all, or 1,3 "
                          "(default: the target version's 'version_policy' tag, else the "
                          "alias's target only)")
    reg.add_argument("--log-sample-rate", type=float, default=0.01, metavar="RATE",
                     help="share of requests kept in the Parquet prediction log of models "
                          "registered with a training profile (default 0.01)")
    reg.add_argument("--poll-s", type=float, default=2.0,
                     help="seconds between registry polls for alias moves (default 2)")
    mon = p.add_argument_group(
        "monitoring (with --registry: models registered with a reference profile)",
        "Drift windows, thresholds and alerts, and the sampled Parquet prediction log under "
        "$ENGINE_HOME/logs/<model>. Give 'engine monitor rules' the same thresholds, so "
        "Prometheus alerts agree with engine_drift_alert and the alert log lines.")
    mon.add_argument("--log-rotate-s", type=float, default=300.0, metavar="S",
                     help="start a new prediction log file every S seconds (default 300): a "
                          "file is readable, e.g. by 'engine monitor report', once closed")
    mon.add_argument("--drift-window-rows", type=int, default=10_000, metavar="N",
                     help="a drift window closes after N rows (default 10000) ...")
    mon.add_argument("--drift-window-s", type=float, default=300.0, metavar="S",
                     help="... or after S seconds with at least --drift-min-rows rows "
                          "(default 300)")
    mon.add_argument("--drift-min-rows", type=int, metavar="N",
                     help="rows a window needs to close on time (default 200, or "
                          "--drift-window-rows if fewer)")
    mon.add_argument("--psi-threshold", type=drift_threshold, default=0.2, metavar="X|off",
                     help="a feature drifts when its PSI is above X (default 0.2)")
    mon.add_argument("--ks-threshold", type=drift_threshold, default=0.15, metavar="X|off",
                     help="... or its binned KS distance above X, numeric features "
                          "(default 0.15)")
    mon.add_argument("--chi2-pvalue-threshold", type=drift_threshold, default=1e-3, metavar="P|off",
                     help="... or its chi-square p-value below P, categorical features "
                          "(default 0.001)")
    mon.add_argument("--alert-webhook", metavar="URL",
                     help="also POST drift alerts as JSON to this http(s) URL (retried with "
                          "backoff; failures counted in engine_alert_webhook_failures_total)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--grpc-port", type=int, default=8001, help="gRPC port (default 8001; 0 = any)")
    p.add_argument("--metrics-port", type=int, default=8002,
                   help="Prometheus /metrics port (default 8002; 0 = any)")
    p.add_argument("--tls-cert", type=Path, metavar="PEM", help="server certificate (enables TLS)")
    p.add_argument("--tls-key", type=Path, metavar="PEM", help="server private key")
    p.add_argument("--tls-client-ca", type=Path, metavar="PEM",
                   help="CA for client certificates (enables mutual TLS)")
    p.add_argument("--auth-token-file", type=Path, metavar="FILE",
                   help="file holding a bearer token required on every RPC except health")
    p.add_argument("--max-message-bytes", type=int, default=64 << 20,
                   help="largest request/response message (default 64 MiB)")
    p.add_argument("--max-inputs", type=int, default=64, help="inputs per request (default 64)")
    p.add_argument("--max-outputs", type=int, default=64,
                   help="requested outputs per request (default 64)")
    p.add_argument("--max-tensor-elements", type=int, default=1 << 26,
                   help="elements per input tensor (default 67108864; outputs are bounded by "
                        "--max-message-bytes)")
    p.add_argument("--grace-s", type=float, default=30.0,
                   help="seconds to finish in-flight requests on SIGTERM/SIGINT (default 30)")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from engine.server.launcher import serve  # needs the compiled server

    return int(serve(_options(args)))


def _options(args: argparse.Namespace) -> ServeOptions:
    from engine.server.launcher import ServeOptions

    return ServeOptions(
        model_repository=args.model_repository,
        demo=args.demo,
        registry=args.registry,
        alias=args.alias,
        registry_home=args.home,
        registry_url=args.registry_url,
        artifacts_url=args.artifacts_url,
        versions=args.versions,
        poll_s=args.poll_s,
        log_sample_rate=args.log_sample_rate,
        log_rotate_s=args.log_rotate_s,
        drift_window_rows=args.drift_window_rows,
        drift_window_s=args.drift_window_s,
        drift_min_rows=args.drift_min_rows,
        psi_threshold=args.psi_threshold,
        ks_threshold=args.ks_threshold,
        chi2_pvalue_threshold=args.chi2_pvalue_threshold,
        alert_webhook=args.alert_webhook,
        log_json=args.log_json,
        host=args.host,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        tls_client_ca=args.tls_client_ca,
        auth_token_file=args.auth_token_file,
        max_message_bytes=args.max_message_bytes,
        max_inputs=args.max_inputs,
        max_outputs=args.max_outputs,
        max_tensor_elements=args.max_tensor_elements,
        grace_s=args.grace_s,
    )
