"""TLS, mutual TLS (certificates generated here with `cryptography`), the bearer token, and the
size limits."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
import tritonclient.grpc as grpcclient
from _models import build_mini_repository
from _server import ServerProcess, start_server
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from tritonclient.utils import InferenceServerException

pytestmark = pytest.mark.integration

TOKEN = "s3cret-token-for-tests"


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name | None = None,
          issuer_key: ec.EllipticCurvePrivateKey | None = None, *, ca: bool = False,
          server: bool = False) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer or name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if server:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def _pem(obj: object) -> bytes:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.private_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("pki")
    ca_key = _key()
    ca = _cert("test CA", ca_key, ca=True)
    server_key, client_key, rogue_key = _key(), _key(), _key()
    files = {
        "ca": _pem(ca),
        "server_cert": _pem(_cert("localhost", server_key, ca.subject, ca_key, server=True)),
        "server_key": _pem(server_key),
        "client_cert": _pem(_cert("client", client_key, ca.subject, ca_key)),
        "client_key": _pem(client_key),
        "rogue_cert": _pem(_cert("rogue", rogue_key)),  # self-signed: not from our CA
        "rogue_key": _pem(rogue_key),
    }
    paths = {}
    for name, data in files.items():
        (d / name).write_bytes(data)
        paths[name] = d / name
    return paths


@pytest.fixture(scope="module")
def mini_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_mini_repository(tmp_path_factory.mktemp("mini"))


def _started(args: list[str], tmp: Path) -> Iterator[ServerProcess]:
    server = start_server(args, tmp)
    yield server
    assert server.terminate() == 0, server.stderr()


@pytest.fixture(scope="module")
def tls_server(mini_repo: Path, pki: dict[str, Path], tmp_path_factory: pytest.TempPathFactory,
               ) -> Iterator[ServerProcess]:
    yield from _started(["--model-repository", str(mini_repo), "--tls-cert",
                         str(pki["server_cert"]), "--tls-key", str(pki["server_key"])],
                        tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def mtls_server(mini_repo: Path, pki: dict[str, Path], tmp_path_factory: pytest.TempPathFactory,
                ) -> Iterator[ServerProcess]:
    yield from _started(["--model-repository", str(mini_repo), "--tls-cert",
                         str(pki["server_cert"]), "--tls-key", str(pki["server_key"]),
                         "--tls-client-ca", str(pki["ca"])], tmp_path_factory.mktemp("mtls"))


@pytest.fixture(scope="module")
def strict_server(mini_repo: Path, tmp_path_factory: pytest.TempPathFactory,
                  ) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("strict")
    (tmp / "token").write_text(TOKEN + "\n")
    yield from _started(["--model-repository", str(mini_repo), "--auth-token-file",
                         str(tmp / "token"), "--max-message-bytes", "65536",
                         "--max-inputs", "2", "--max-tensor-elements", "1000"], tmp)


def _infer(client: grpcclient.InferenceServerClient, rows: int = 1, **kwargs: object) -> np.ndarray:
    x = np.ones((rows, 4), dtype=np.float32)
    i = grpcclient.InferInput("x", [rows, 4], "FP32")
    i.set_data_from_numpy(x)
    return client.infer("add", [i], **kwargs).as_numpy("y")  # type: ignore[arg-type]


def test_tls(tls_server: ServerProcess, pki: dict[str, Path]) -> None:
    client = grpcclient.InferenceServerClient(tls_server.url, ssl=True,
                                              root_certificates=str(pki["ca"]))
    assert client.is_server_ready()
    np.testing.assert_array_equal(_infer(client), np.full((1, 4), 2, np.float32))
    client.close()
    plain = grpcclient.InferenceServerClient(tls_server.url)
    with pytest.raises(InferenceServerException) as info:
        plain.is_server_live(client_timeout=5)
    assert info.value.status() in ("StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED")
    plain.close()


def test_mutual_tls(mtls_server: ServerProcess, pki: dict[str, Path]) -> None:
    good = grpcclient.InferenceServerClient(
        mtls_server.url, ssl=True, root_certificates=str(pki["ca"]),
        private_key=str(pki["client_key"]), certificate_chain=str(pki["client_cert"]))
    np.testing.assert_array_equal(_infer(good), np.full((1, 4), 2, np.float32))
    good.close()
    for key, cert in ((None, None), ("rogue_key", "rogue_cert")):
        bad = grpcclient.InferenceServerClient(
            mtls_server.url, ssl=True, root_certificates=str(pki["ca"]),
            private_key=str(pki[key]) if key else None,
            certificate_chain=str(pki[cert]) if cert else None)
        with pytest.raises(InferenceServerException) as info:
            bad.is_server_live(client_timeout=5)
        assert info.value.status() in ("StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED")
        bad.close()


def test_token_required_on_every_rpc(strict_server: ServerProcess) -> None:
    for headers in (None, {"authorization": "Bearer wrong"}, {"authorization": TOKEN},
                    {"authorization": "Bearer " + TOKEN[:-1]}):
        c = grpcclient.InferenceServerClient(strict_server.url)
        for call in (c.is_server_live, lambda c=c, **kw: _infer(c, **kw),
                     lambda c=c, **kw: c.get_model_metadata("add", **kw),
                     lambda c=c, **kw: c.get_model_repository_index(**kw),
                     lambda c=c, **kw: c.unload_model("add", **kw)):
            with pytest.raises(InferenceServerException) as info:
                call(headers=headers)
            assert info.value.status() == "StatusCode.UNAUTHENTICATED", headers
            assert "bearer token" in info.value.message()
        c.close()
    ok = grpcclient.InferenceServerClient(strict_server.url)
    auth = {"authorization": "Bearer " + TOKEN}
    assert ok.is_server_ready(headers=auth)
    np.testing.assert_array_equal(_infer(ok, headers=auth), np.full((1, 4), 2, np.float32))
    ok.close()


def test_token_on_stream(strict_server: ServerProcess) -> None:
    import queue

    for headers, expect_ok in ((None, False), ({"authorization": "Bearer " + TOKEN}, True)):
        got: queue.Queue[tuple[object, object]] = queue.Queue()
        c = grpcclient.InferenceServerClient(strict_server.url)
        c.start_stream(callback=lambda result, error, got=got: got.put((result, error)),
                       headers=headers)
        i = grpcclient.InferInput("x", [1, 4], "FP32")
        i.set_data_from_numpy(np.zeros((1, 4), np.float32))
        try:
            c.async_stream_infer("add", [i])
        except InferenceServerException:
            assert not expect_ok  # the server may end the stream before the first write
        _result, error = got.get(timeout=10)
        assert (error is None) == expect_ok, error
        if not expect_ok:
            assert "UNAUTHENTICATED" in str(error) or "bearer token" in str(error)
        c.stop_stream()
        c.close()


def test_health_needs_no_token_and_reflection_is_off(strict_server: ServerProcess) -> None:
    with grpc.insecure_channel(strict_server.url) as channel:
        assert channel.unary_unary("/grpc.health.v1.Health/Check")(b"", timeout=5) == b"\x08\x01"
        info = channel.stream_stream(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo")
        with pytest.raises(grpc.RpcError) as err:
            list(info(iter([b"\x3a\x00"]), timeout=5))
        assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_limits(strict_server: ServerProcess) -> None:
    c = grpcclient.InferenceServerClient(strict_server.url)
    auth = {"authorization": "Bearer " + TOKEN}
    with pytest.raises(InferenceServerException) as info:
        _infer(c, rows=5000, headers=auth)  # 80 KB > --max-message-bytes 65536
    assert info.value.status() == "StatusCode.RESOURCE_EXHAUSTED"
    with pytest.raises(InferenceServerException) as info:
        _infer(c, rows=300, headers=auth)  # 1200 elements > --max-tensor-elements 1000
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "limit of 1000 elements" in info.value.message()
    inputs = []
    for name in ("a", "b", "c"):
        i = grpcclient.InferInput(name, [1, 4], "FP32")
        i.set_data_from_numpy(np.zeros((1, 4), np.float32))
        inputs.append(i)
    with pytest.raises(InferenceServerException) as info:
        c.infer("add", inputs, headers=auth)
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT"
    assert "3 inputs; the limit is 2" in info.value.message()
    c.close()


@pytest.mark.parametrize(("files", "fragment"), [
    (("mini_csv", "mini_csv"), "are not a PEM certificate chain and its private key"),
    (("server_cert", "rogue_key"), "are not a PEM certificate chain and its private key"),
    (("server_cert", "server_key", "server_key"), "--tls-client-ca"),
    (("server_cert", "encrypted_key"), "is encrypted; gRPC needs it unencrypted"),
], ids=["not-pem", "key-of-another-cert", "client-ca-not-a-cert", "encrypted-key"])
def test_bad_tls_files_are_named_not_taken_for_a_port_problem(
        pki: dict[str, Path], tmp_path: Path, files: tuple[str, ...], fragment: str) -> None:
    import subprocess
    import sys

    (tmp_path / "mini_csv").write_text("a,b\n1,2\n")
    # The server key, encrypted: OpenSSL would ask for its pass phrase on the terminal.
    key = serialization.load_pem_private_key(pki["server_key"].read_bytes(), password=None)
    (tmp_path / "encrypted_key").write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret")))
    paths = {**pki, "mini_csv": tmp_path / "mini_csv", "encrypted_key": tmp_path / "encrypted_key"}
    args = ["--tls-cert", str(paths[files[0]]), "--tls-key", str(paths[files[1]])]
    if len(files) == 3:
        args += ["--tls-client-ca", str(paths[files[2]])]
    proc = subprocess.run(
        [sys.executable, "-m", "engine.cli", "serve", "--demo", "--grpc-port", "0",
         "--metrics-port", "0", *args],
        capture_output=True, text=True, timeout=60, check=False,
        env={"ENGINE_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 1, proc.stderr
    assert fragment in proc.stderr
    assert "cannot listen" not in proc.stderr
