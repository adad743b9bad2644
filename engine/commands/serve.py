"""``engine serve``: the KServe v2 gRPC server (C++ data plane) with Prometheus metrics.

    engine serve --model-repository DIR     Triton layout: <name>/config.pbtxt, <name>/<v>/model.onnx
    engine serve --demo                     a small MLP generated on first run under ENGINE_HOME
    engine serve --registry [--alias A]     every registry model with alias A (default
                                            production), following alias moves live
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add ``serve`` to the ``engine`` parser."""
    p = subparsers.add_parser(
        "serve",
        help="serve models over gRPC (KServe v2 / Triton protocol)",
        description="Serve ONNX models over gRPC with the KServe v2 protocol (stock tritonclient "
                    "works), grpc.health.v1, and Prometheus metrics on a second port. "
                    "SIGTERM/SIGINT drain in-flight requests, then exit 0.",
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
    reg.add_argument("--versions", metavar="POLICY",
                     help="versions also served by explicit version: latest:N, all, or 1,3 "
                          "(default: the target version's 'version_policy' tag, else the "
                          "alias's target only)")
    reg.add_argument("--log-sample-rate", type=float, default=0.01, metavar="RATE",
                     help="share of requests kept in the Parquet prediction log of models "
                          "registered with a training profile (default 0.01)")
    reg.add_argument("--poll-s", type=float, default=2.0,
                     help="seconds between registry polls for alias moves (default 2)")
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
                   help="elements per tensor (default 67108864)")
    p.add_argument("--grace-s", type=float, default=30.0,
                   help="seconds to finish in-flight requests on SIGTERM/SIGINT (default 30)")
    p.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from engine.server.launcher import ServeOptions, serve  # needs the compiled server

    options = ServeOptions(
        model_repository=args.model_repository,
        demo=args.demo,
        registry=args.registry,
        alias=args.alias,
        registry_home=args.home,
        registry_url=args.registry_url,
        versions=args.versions,
        poll_s=args.poll_s,
        log_sample_rate=args.log_sample_rate,
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
    return int(serve(options))
