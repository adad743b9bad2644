"""proto/*.proto against the descriptors the stock tritonclient ships: every message, field,
enum value and RPC we declare has the published name, number, type and label."""

from __future__ import annotations

import os
from pathlib import Path

import grpc_tools
import pytest
from google.protobuf import descriptor_pb2
from grpc_tools import protoc

pytestmark = pytest.mark.integration

PROTO_DIR = Path(__file__).resolve().parents[2] / "proto"


@pytest.fixture(scope="module")
def ours(tmp_path_factory: pytest.TempPathFactory) -> dict[str, descriptor_pb2.FileDescriptorProto]:
    out = tmp_path_factory.mktemp("proto") / "set.pb"
    include = os.path.join(os.path.dirname(grpc_tools.__file__), "_proto")
    rc = protoc.main(["protoc", f"-I{PROTO_DIR}", f"-I{include}", "--include_imports",
                      f"--descriptor_set_out={out}", str(PROTO_DIR / "grpc_service.proto")])
    assert rc == 0
    files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file
    return {f.name: f for f in files}


@pytest.fixture(scope="module")
def theirs() -> dict[str, descriptor_pb2.FileDescriptorProto]:
    from tritonclient.grpc import model_config_pb2, service_pb2

    result = {}
    for module in (service_pb2, model_config_pb2):
        fdp = descriptor_pb2.FileDescriptorProto()
        module.DESCRIPTOR.CopyToProto(fdp)
        result[fdp.name] = fdp
    return result


def _messages(prefix: str, messages: object, acc: dict[str, object]) -> dict[str, object]:
    for m in messages:  # type: ignore[attr-defined]
        acc[prefix + m.name] = m
        _messages(prefix + m.name + ".", m.nested_type, acc)
    return acc


def _enums(file: descriptor_pb2.FileDescriptorProto) -> dict[str, object]:
    acc: dict[str, object] = {e.name: e for e in file.enum_type}
    for name, m in _messages("", file.message_type, {}).items():
        for e in m.enum_type:  # type: ignore[attr-defined]
            acc[f"{name}.{e.name}"] = e
    return acc


def test_same_files_and_package(ours: dict, theirs: dict) -> None:
    assert set(ours) == {"grpc_service.proto", "model_config.proto"} == set(theirs)
    for name, f in ours.items():
        assert f.package == theirs[name].package == "inference"
        assert list(f.dependency) == list(theirs[name].dependency)


def test_every_field_matches(ours: dict, theirs: dict) -> None:
    checked = 0
    for name, f in ours.items():
        mine, ref = _messages("", f.message_type, {}), _messages("", theirs[name].message_type, {})
        for full, message in mine.items():
            assert full in ref, f"message {full} is not in the published protocol"
            ref_fields = {x.name: x for x in ref[full].field}  # type: ignore[attr-defined]
            for fld in message.field:  # type: ignore[attr-defined]
                assert fld.name in ref_fields, f"{full}.{fld.name} is not published"
                r = ref_fields[fld.name]
                assert (fld.number, fld.type, fld.label, fld.type_name) == (
                    r.number, r.type, r.label, r.type_name), f"{full}.{fld.name}"
                has_oneof = fld.HasField("oneof_index")
                assert has_oneof == r.HasField("oneof_index"), f"{full}.{fld.name} oneof"
                if has_oneof:
                    assert (message.oneof_decl[fld.oneof_index].name  # type: ignore[attr-defined]
                            == ref[full].oneof_decl[r.oneof_index].name)  # type: ignore[attr-defined]
                checked += 1
    assert checked > 150


def test_every_enum_value_matches(ours: dict, theirs: dict) -> None:
    for name, f in ours.items():
        mine, ref = _enums(f), _enums(theirs[name])
        for full, enum in mine.items():
            ref_values = {v.name: v.number for v in ref[full].value}  # type: ignore[attr-defined]
            for v in enum.value:  # type: ignore[attr-defined]
                assert ref_values.get(v.name) == v.number, f"{full}.{v.name}"


def test_service_methods_match(ours: dict, theirs: dict) -> None:
    (svc,) = ours["grpc_service.proto"].service
    (ref,) = theirs["grpc_service.proto"].service
    assert svc.name == ref.name == "GRPCInferenceService"
    ref_methods = {m.name: m for m in ref.method}
    names = [m.name for m in svc.method]
    assert names == ["ServerLive", "ServerReady", "ModelReady", "ServerMetadata", "ModelMetadata",
                     "ModelInfer", "ModelStreamInfer", "ModelConfig", "ModelStatistics",
                     "RepositoryIndex", "RepositoryModelLoad", "RepositoryModelUnload"]
    for m in svc.method:
        r = ref_methods[m.name]
        assert (m.input_type, m.output_type, m.client_streaming, m.server_streaming) == (
            r.input_type, r.output_type, r.client_streaming, r.server_streaming)
