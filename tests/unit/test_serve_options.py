"""engine serve's limits are validated before anything starts, with the bad value named."""

from __future__ import annotations

from pathlib import Path

import pytest
from engine.server.launcher import ServeOptions

from engine.errors import InvalidConfigError
from engine.monitoring import MonitorConfig


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        # Named by the option that sets them, as typed on the command line.
        ("max_tensor_elements", 0, "^--max-tensor-elements must be >= 1; was 0"),
        ("max_tensor_elements", 2**40 + 1, r"^--max-tensor-elements must be <= 2\^40; was 1099"),
        ("max_inputs", 0, "^--max-inputs must be >= 1; was 0"),
        ("max_outputs", 0, "^--max-outputs must be >= 1; was 0"),
        ("max_message_bytes", 10, r"^--max-message-bytes must be in \[1024, 2147483647\]; was 10"),
        ("grace_s", -1.0, r"^--grace-s must be a number of seconds in \[0, 86400\]; was -1.0"),
        # inf was cast to a negative count of milliseconds: no drain at all.
        ("grace_s", float("inf"), r"^--grace-s must be a number .*; was inf"),
        ("grace_s", float("nan"), r"^--grace-s must be a number .*; was nan"),
        ("grpc_port", 70000, r"^--grpc-port must be in \[0, 65535\]; was 70000"),
        ("metrics_port", -1, r"^--metrics-port must be in \[0, 65535\]; was -1"),
    ],
)
def test_bad_limits_are_refused(field: str, value: object, match: str) -> None:
    with pytest.raises(InvalidConfigError, match=match):
        ServeOptions(demo=True, **{field: value})


def test_largest_element_limit_is_accepted() -> None:
    assert ServeOptions(demo=True, max_tensor_elements=2**40).max_tensor_elements == 2**40


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"drift_window_rows": 0}, "--drift-window-rows must be >= 1; was 0"),
        ({"drift_window_s": 0.0}, "--drift-window-s must be > 0; was 0.0"),
        ({"drift_window_s": float("inf")}, "--drift-window-s must be > 0; was inf"),
        (
            {"drift_window_rows": 100, "drift_min_rows": 101},
            r"--drift-min-rows must be in \[1, --drift-window-rows=100\]; was 101",
        ),
        ({"psi_threshold": float("nan")}, "--psi-threshold must be > 0, or off; was nan"),
        ({"psi_threshold": -0.1}, "--psi-threshold must be > 0, or off; was -0.1"),
        ({"ks_threshold": 1.0}, r"--ks-threshold must be in \(0, 1\), or off; was 1.0"),
        ({"chi2_pvalue_threshold": 0.0}, r"--chi2-pvalue-threshold must be in \(0, 1\)"),
        ({"alert_webhook": "ftp://host/x"}, "--alert-webhook must be an http:// or https://"),
        ({"alert_webhook": "http:///x"}, "URL with a host; was 'http:///x'"),
        ({"log_rotate_s": 0.5}, r"--log-rotate-s must be in \[1, 86400\]; was 0.5"),
    ],
)
def test_bad_monitoring_options_are_refused(fields: dict[str, object], match: str) -> None:
    with pytest.raises(InvalidConfigError, match=match):
        ServeOptions(registry=True, **fields)  # type: ignore[arg-type]


def test_monitoring_options_need_the_registry() -> None:
    with pytest.raises(
        InvalidConfigError, match="--psi-threshold, --alert-webhook: monitoring options need"
    ):
        ServeOptions(demo=True, psi_threshold=0.1, alert_webhook="http://127.0.0.1:1/")


def test_registry_options_given_without_the_registry_are_refused_not_ignored() -> None:
    with pytest.raises(
        InvalidConfigError, match="^--alias, --poll-s: registry options need --registry$"
    ):
        ServeOptions(demo=True, alias="staging", poll_s=5.0)
    with pytest.raises(InvalidConfigError, match="--log-sample-rate: monitoring options need"):
        ServeOptions(model_repository=Path("repo"), log_sample_rate=0.5)
    ServeOptions(demo=True, alias="production", poll_s=2.0)  # the defaults, as if not given


def test_monitoring_options_reach_the_monitor() -> None:
    options = ServeOptions(
        registry=True,
        drift_window_rows=50,
        drift_window_s=2.0,
        psi_threshold=0.05,
        ks_threshold=None,
        log_sample_rate=0.5,
        log_rotate_s=60.0,
    )
    config = options.monitor_config()
    assert (config.window_rows, config.window_s, config.min_rows) == (50, 2.0, 50)
    assert (config.thresholds.psi, config.thresholds.ks, config.thresholds.chi2_pvalue) == (
        0.05,
        None,
        1e-3,
    )
    log = options.prediction_log_config()
    assert (log.sample_rate, log.max_file_age_s) == (0.5, 60.0)
    defaults = ServeOptions(registry=True).monitor_config()
    assert defaults == MonitorConfig()


def test_command_line_defaults_are_the_options_defaults() -> None:
    from engine.cli import build_parser
    from engine.commands.serve import _options

    args = build_parser().parse_args(["serve", "--registry"])
    assert _options(args) == ServeOptions(registry=True)
    args = build_parser().parse_args(
        ["serve", "--registry", "--ks-threshold", "off", "--psi-threshold", "0.3"]
    )
    assert (_options(args).ks_threshold, _options(args).psi_threshold) == (None, 0.3)


def test_a_threshold_that_is_not_a_number_is_an_argparse_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from engine.cli import build_parser

    with pytest.raises(SystemExit) as info:
        build_parser().parse_args(["serve", "--registry", "--psi-threshold", "high"])
    assert info.value.code == 2
    assert "--psi-threshold: expected a number or 'off'; was 'high'" in capsys.readouterr().err


def test_a_bad_poll_interval_names_its_option() -> None:
    with pytest.raises(InvalidConfigError, match=r"^--poll-s must be in \(0, 3600\]; was 0.0"):
        ServeOptions(registry=True, poll_s=0.0)
