from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from engine.config import MAX_INT32, ModelConfig
from engine.errors import (
    InvalidConfigError,
    InvalidModelNameError,
    ModelLoadError,
    ModelNotFoundError,
)
from engine.registry import Registry
from engine.repository import (
    VersionPolicy,
    import_repository,
    parse_pbtxt,
    read_config,
    scan_model,
    scan_repository,
)
from engine.settings import get_settings
from engine.signature import TensorSpec

FULL_CONFIG = """
# A Triton config using every supported field.
name: "mlp"
platform: "onnxruntime_onnx"
max_batch_size: 32
input [
  {
    name: "x"
    data_type: TYPE_FP32
    dims: [ 4 ]
  }
]
output [
  {
    name: "y"
    data_type: TYPE_FP32
    dims: [ 4 ]
  }
]
dynamic_batching {
  preferred_batch_size: [ 8, 16 ]
  max_queue_delay_microseconds: 100
}
instance_group [ { count: 2, kind: KIND_GPU, gpus: [ 1 ] } ]
version_policy: { latest: { num_versions: 2 } }
"""


def _add_model(path: Path, bias: float = 1.0) -> Path:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])
    b = numpy_helper.from_array(np.full(4, bias, dtype=np.float32), "b")
    graph = helper.make_graph([helper.make_node("Add", ["x", "b"], ["y"])], "add", [x], [y], [b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))
    return path


def _config(tmp_path: Path, text: str, name: str = "mlp") -> Path:
    path = tmp_path / name / "config.pbtxt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_full_config_maps_with_triton_meaning(tmp_path: Path) -> None:
    config, policy, filename = read_config(_config(tmp_path, FULL_CONFIG), "mlp")
    assert config.inputs == (TensorSpec("x", "float32", (-1, 4)),)  # batch dim prepended
    assert config.outputs == (TensorSpec("y", "float32", (-1, 4)),)
    assert config.batching is True
    assert config.max_batch_size == 32
    assert config.preferred_batch_sizes == (8, 16)
    assert config.max_queue_delay_us == 100
    assert config.instances == 2
    assert config.providers == ("cuda",)
    assert config.device_id == 1
    assert policy == VersionPolicy("latest", num_versions=2)
    assert filename == "model.onnx"


def test_no_batching_keeps_dims_as_given(tmp_path: Path) -> None:
    text = 'input { name: "x" data_type: TYPE_INT64 dims: [2, -1] }'
    config, policy, _ = read_config(_config(tmp_path, text), "mlp")
    assert config.inputs == (TensorSpec("x", "int64", (2, -1)),)
    assert config.batching is False
    assert config.max_batch_size == 0  # Triton's "no batch dimension", not a bound of 1
    assert policy == VersionPolicy()  # Triton's default: latest 1


def test_batching_without_dynamic_batching_is_not_dynamic(tmp_path: Path) -> None:
    # A batch dimension of at most 8 rows, but requests are never combined.
    config, _, _ = read_config(_config(tmp_path, "max_batch_size: 8"), "mlp")
    assert (config.batching, config.max_batch_size) == (False, 8)


def test_instance_kinds(tmp_path: Path) -> None:
    cpu, _, _ = read_config(_config(tmp_path, "instance_group [{ kind: KIND_CPU }]"), "mlp")
    assert (cpu.providers, cpu.instances) == (("cpu",), 1)
    auto, _, _ = read_config(_config(tmp_path, "instance_group [{count: 3}, {count: 1}]"), "mlp")
    assert (auto.providers, auto.instances) == (ModelConfig().providers, 4)


def test_version_policies(tmp_path: Path) -> None:
    _, specific, _ = read_config(
        _config(tmp_path, "version_policy { specific { versions: [1, 3] } }"), "mlp"
    )
    assert specific.select([1, 2, 3]) == [1, 3]
    _, every, _ = read_config(_config(tmp_path, "version_policy { all { } }"), "mlp")
    assert every.select([3, 1, 2]) == [1, 2, 3]
    assert VersionPolicy("latest", num_versions=2).select([1, 5, 3]) == [3, 5]
    with pytest.raises(
        InvalidConfigError, match=r"names versions \[3\] that have no folder; available: \[1, 2\]"
    ):
        specific.select([1, 2])


def test_queue_policy_and_parameters(tmp_path: Path) -> None:
    text = """
        max_batch_size: 8
        dynamic_batching {
          default_queue_policy {
            max_queue_size: 16 default_timeout_microseconds: 5000
            allow_timeout_override: true timeout_action: REJECT
          }
        }
        parameters { key: "intra_op_thread_count" value { string_value: "2" } }
        parameters [{ key: "inter_op_thread_count" value: { string_value: "0" } },
                    { key: "completion_spin" value { string_value: "false" } },
                    { key: "worker_cpus" value { string_value: "0,1" } }]
    """
    config, _, _ = read_config(_config(tmp_path, text), "mlp")
    assert (config.max_queue_size, config.default_timeout_us) == (16, 5000)
    assert (config.intra_op_threads, config.inter_op_threads) == (2, 0)
    assert config.completion_spin is False
    assert config.worker_cpus == (0, 1)
    unbounded = "max_batch_size: 8 dynamic_batching { default_queue_policy { max_queue_size: 0 } }"
    config, _, _ = read_config(_config(tmp_path, unbounded), "mlp")
    assert config.max_queue_size == MAX_INT32  # Triton's 0: no bound
    assert config.default_timeout_us == ModelConfig().default_timeout_us
    assert read_config(_config(tmp_path, "max_batch_size: 8"), "mlp")[0] == ModelConfig(
        max_batch_size=8, batching=False)  # nothing set: the engine's defaults


def test_text_format_variants_parse_the_same() -> None:
    a = parse_pbtxt('input [{ name: "x", data_type: TYPE_FP32, dims: [1] }]')
    b = parse_pbtxt("input < name: 'x'; data_type: TYPE_FP32 dims: 1 >")
    c = parse_pbtxt('input: { name: "x" data_type: TYPE_FP32 dims: [ 1 ] }')
    assert a == b == c == {"input": [{"name": "x", "data_type": "TYPE_FP32", "dims": [1]}]}
    assert parse_pbtxt('name: "a\\"b"') == {"name": 'a"b'}
    assert parse_pbtxt("") == {}


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [
        ("max_batch_size: 8\nfoo: 1", 2, "unknown or unsupported field 'foo' in ModelConfig"),
        ('input { name: "x"\n  format: FORMAT_NHWC }', 2, "unknown or unsupported field 'format'"),
        (
            "max_batch_size: 8\nmax_batch_size: 9",
            2,
            "'max_batch_size' of ModelConfig may be given only once",
        ),
        ('max_batch_size: "8"', 1, "field 'max_batch_size' needs an integer; found '\"8\"'"),
        ("max_batch_size: 1.5", 1, "needs an integer; found '1.5'"),
        ("name: mlp", 1, "field 'name' needs a quoted string; found 'mlp'"),
        ('input { data_type: "TYPE_FP32" }', 1, "needs an enum name"),
        ('input {\n name: "x"\n', 3, "expected a field name in ModelInput but found 'end of file'"),
        ("max_batch_size 8", 1, "expected ':' but found '8'"),
        ("dims: [1, 2]", 1, "unknown or unsupported field 'dims' in ModelConfig"),
        ('input [ { name: "x" } { name: "y" } ]', 1, "expected ',' but found '{'"),
        ("\n\nmax_batch_size: 8 $", 3, "unexpected character '$'"),
        ('name: "a\\q"', 1, "unsupported escape"),
        ("dynamic_batching { }\ndynamic_batching { }", 2, "may be given only once"),
        (
            "dynamic_batching {\n default_queue_policy { allow_timeout_override: 1 } }",
            2,
            "field 'allow_timeout_override' needs true or false; found '1'",
        ),
        ("dynamic_batching { priority_levels: 2 }", 1, "unsupported field 'priority_levels'"),
        ("parameters { key: 'a' value { int_value: 2 } }", 1, "unsupported field 'int_value'"),
    ],
)
def test_syntax_and_schema_errors_name_file_and_line(text: str, line: int, fragment: str) -> None:
    with pytest.raises(InvalidConfigError) as info:
        parse_pbtxt(text, "repo/mlp/config.pbtxt")
    assert str(info.value).startswith(f"repo/mlp/config.pbtxt:{line}: ")
    assert fragment in str(info.value)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('name: "other"', "name 'other' does not match the model's name 'mlp'"),
        ('platform: "tensorrt_plan"', "platform 'tensorrt_plan' is not supported"),
        ('backend: "python"', "backend 'python' is not supported"),
        ('default_model_filename: "../x.onnx"', "default_model_filename must be a plain file name"),
        ("max_batch_size: -1", "max_batch_size must be >= 0; was -1"),
        ('input { name: "x" data_type: TYPE_BF16 dims: [1] }', "has data_type TYPE_BF16"),
        ('input { name: "x" data_type: TYPE_FP32 }', "an input lacks 'dims'"),
        ('input { name: "x" data_type: TYPE_FP32 dims: [0] }', "dims must be positive or -1"),
        ("dynamic_batching { }", "dynamic_batching needs max_batch_size > 0"),
        (
            "max_batch_size: 4 dynamic_batching { preferred_batch_size: [8] }",
            "preferred_batch_sizes must be ints in [1, max_batch_size=4]",
        ),
        ("instance_group [{kind: KIND_CPU}, {kind: KIND_GPU}]", "kinds must all be the same"),
        ("instance_group [{kind: KIND_MODEL}]", "kind KIND_MODEL is not supported"),
        ("instance_group [{kind: KIND_GPU gpus: [0, 1]}]", "several GPUs [0, 1]"),
        ("instance_group [{kind: KIND_CPU gpus: [0]}]", "gpus needs kind: KIND_GPU"),
        ("instance_group [{count: 0}]", "instances must be an int >= 1; was 0"),
        ("version_policy { latest { num_versions: 0 } }", "num_versions must be >= 1; was 0"),
        ("version_policy { specific { } }", "specific needs versions"),
        ("version_policy { all {} latest {} }", "exactly one of latest, specific, all"),
        (
            "max_batch_size: 8 dynamic_batching { default_queue_policy { timeout_action: DELAY } }",
            "timeout_action DELAY is not supported; only REJECT",
        ),
        (
            ("max_batch_size: 8 dynamic_batching { default_queue_policy { "
            "allow_timeout_override: false } }"),
            "allow_timeout_override: false is not supported",
        ),
        (
            "max_batch_size: 8 dynamic_batching { default_queue_policy { max_queue_size: -1 } }",
            "max_queue_size must be >= 0; was -1",
        ),
        (
            ("max_batch_size: 8 dynamic_batching { default_queue_policy { "
            "default_timeout_microseconds: -5 } }"),
            "default_timeout_us must be an int >= 0; was -5",
        ),
        (
            'parameters { key: "execution_mode" value { string_value: "1" } }',
            ("parameters key 'execution_mode' is not supported; supported: ['completion_spin', "
            "'inter_op_thread_count', 'intra_op_thread_count', 'worker_cpus']"),
        ),
        (
            'parameters { key: "intra_op_thread_count" value { string_value: " 2" } }',
            "parameters 'intra_op_thread_count' needs a string_value of a thread count",
        ),
        (
            'parameters { key: "intra_op_thread_count" value { string_value: "9999" } }',
            "intra_op_threads must be an int <= 256; was 9999",
        ),
        (
            'parameters { key: "intra_op_thread_count" }',
            "needs a string_value of a thread count (0: ORT's default); was None",
        ),
        (
            'parameters { key: "worker_cpus" value { string_value: "0,,1" } }',
            ("parameters 'worker_cpus' needs a string_value of CPU numbers separated by commas, "
             'e.g. "0,2" ("": unpinned); was \'0,,1\''),
        ),
        (
            'parameters { key: "completion_spin" value { string_value: "yes" } }',
            """parameters 'completion_spin' needs a string_value of "true" or "false"; was 'yes'""",
        ),
        (
            ('parameters [{ key: "completion_spin" value { string_value: "true" } }, '
            '{ key: "completion_spin" value { string_value: "true" } }]'),
            "parameters key 'completion_spin' is given twice",
        ),
    ],
)
def test_semantic_errors_name_the_file(tmp_path: Path, text: str, fragment: str) -> None:
    path = _config(tmp_path, text)
    with pytest.raises(InvalidConfigError) as info:
        read_config(path, "mlp")
    assert str(info.value).startswith(str(path))
    assert fragment in str(info.value)


def _repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    for v in (1, 2, 3):
        _add_model(repo / "mlp" / str(v) / "model.onnx", bias=float(v))
    (repo / "mlp" / "config.pbtxt").write_text(
        FULL_CONFIG.replace("KIND_GPU, gpus: [ 1 ]", "KIND_CPU")
    )
    _add_model(repo / "plain" / "1" / "model.onnx", bias=9.0)  # no config.pbtxt
    (repo / "plain" / "notes").mkdir()  # not a version folder
    (repo / ".git").mkdir()
    (repo / "README.md").write_text("hi")
    return repo


def test_scan_selects_versions_by_policy(tmp_path: Path) -> None:
    models = scan_repository(_repo(tmp_path))
    assert [m.name for m in models] == ["mlp", "plain"]
    assert [v.version for v in models[0].versions] == [2, 3]
    assert models[0].config.batching is True
    assert [v.version for v in models[1].versions] == [1]
    assert models[1].config == ModelConfig()


def test_scan_refuses_bad_folders(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="is not a folder"):
        scan_repository(tmp_path / "missing")
    (tmp_path / "r" / "bad name").mkdir(parents=True)
    with pytest.raises(InvalidModelNameError, match="model folder .*bad name"):
        scan_repository(tmp_path / "r")
    (tmp_path / "r2" / "empty" / "1").mkdir(parents=True)
    with pytest.raises(ModelLoadError, match="has no version folder with 'model.onnx'"):
        scan_repository(tmp_path / "r2")


def test_import_registers_once_and_sets_alias(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ENGINE_REGISTRY_URL", raising=False)
    get_settings.cache_clear()
    repo = _repo(tmp_path)
    with Registry(home=tmp_path / "home") as registry:
        first = import_repository(registry, repo, alias="production")
        assert [(r.name, r.repository_version, r.registered_version, r.skipped) for r in first] == [
            ("mlp", 2, 1, False),
            ("mlp", 3, 2, False),
            ("plain", 1, 1, False),
        ]
        assert registry.get("mlp@production").version == 2
        assert registry.get("mlp:1").tags == {
            "source": "model-repository",
            "repository_version": "2",
            "version_policy": "latest:2",  # the pbtxt's, for `engine serve --registry`
        }
        assert registry.get("mlp:1").config.preferred_batch_sizes == (8, 16)
        again = import_repository(registry, repo)
        assert all(r.skipped for r in again)
        assert [v.version for v in registry.versions("mlp")] == [1, 2]


def test_import_loads_each_new_file_in_onnx_runtime_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The load check is ORT's own session: for a large model, the import's slowest step."""
    from engine.registry import onnx_signature

    loaded: list[str] = []
    real_check_loads = onnx_signature.check_loads

    def counting_check_loads(path: Path, label: str) -> None:
        loaded.append(label)
        real_check_loads(path, label)

    monkeypatch.setattr(onnx_signature, "check_loads", counting_check_loads)
    monkeypatch.delenv("ENGINE_REGISTRY_URL", raising=False)
    get_settings.cache_clear()
    repo = _repo(tmp_path)
    with Registry(home=tmp_path / "home") as registry:
        import_repository(registry, repo)
        assert loaded == ["mlp/2/model.onnx", "mlp/3/model.onnx", "plain/1/model.onnx"]
        loaded.clear()
        import_repository(registry, repo)  # all registered already: nothing to load
        assert loaded == []


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("max_batch_size: 99999999999999999999999", "max_batch_size must be an int <= 2147483647"),
        ("instance_group [ { count: 100000 } ]", "instances must be an int <= 256; was 100000"),
        (
            "max_batch_size: 8\ndynamic_batching { max_queue_delay_microseconds: 99999999999999 }",
            "max_queue_delay_us must be an int <= 86400000000",
        ),
        ("max_batch_size: 8\ndynamic_batching { preferred_batch_size: [4, 4] }", "must not repeat"),
        ("max_batch_size: 8\nfoo: 1", "mlp/config.pbtxt:2: unknown or unsupported field 'foo'"),
    ],
)
def test_scan_messages_name_files_relative_to_the_repository(
    tmp_path: Path, text: str, fragment: str
) -> None:
    # A server passes these messages to its clients: no path above the repository.
    _add_model(tmp_path / "repo" / "mlp" / "1" / "model.onnx")
    (tmp_path / "repo" / "mlp" / "config.pbtxt").write_text(text)
    with pytest.raises(InvalidConfigError) as info:
        scan_model(tmp_path / "repo", "mlp")
    assert fragment in str(info.value)
    assert str(tmp_path) not in str(info.value)
    assert str(info.value).startswith("mlp/config.pbtxt")


def test_scan_refuses_a_config_linked_out_of_the_model_folder(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0\n")
    _add_model(tmp_path / "repo" / "mlp" / "1" / "model.onnx")
    (tmp_path / "repo" / "mlp" / "config.pbtxt").symlink_to(secret)
    with pytest.raises(InvalidConfigError, match="a link out of the model folder is refused") as info:
        scan_model(tmp_path / "repo", "mlp")
    assert "root" not in str(info.value)  # parse errors would quote the linked file
    (tmp_path / "repo" / "empty" / "1").mkdir(parents=True)
    with pytest.raises(ModelLoadError) as no_version:
        scan_model(tmp_path / "repo", "empty")
    assert str(tmp_path) not in str(no_version.value)


def _registry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Registry:
    monkeypatch.delenv("ENGINE_REGISTRY_URL", raising=False)
    get_settings.cache_clear()
    return Registry(home=tmp_path / "home")


def test_failed_import_registers_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    repo = tmp_path / "repo"
    _add_model(repo / "aaa" / "1" / "model.onnx")
    _add_model(repo / "zzz" / "1" / "model.onnx")
    (repo / "zzz" / "config.pbtxt").write_text(
        'max_batch_size: 8\ninput [ { name: "x" data_type: TYPE_INT64 dims: [ 4 ] } ]\n')
    with _registry(tmp_path, monkeypatch) as registry:
        with pytest.raises(InvalidConfigError) as info:
            import_repository(registry, repo, alias="prod")
        assert str(info.value) == (
            "zzz/1/model.onnx: config declares input 'x' as int64 but the model has float32")
        assert registry.list() == []  # 'aaa' sorts first, yet was not registered
        with pytest.raises(ModelNotFoundError):
            registry.get("aaa@prod")


def test_import_of_a_repository_without_models_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "repo" / ".hidden").mkdir(parents=True)  # hidden folders are not models
    with (
        _registry(tmp_path, monkeypatch) as registry,
        pytest.raises(ModelLoadError, match="repo' has no model"),
    ):
        import_repository(registry, tmp_path / "repo")


def test_import_refuses_batching_a_model_without_batch_dimension(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "fixed", [x],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 4])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    (repo / "fx" / "1").mkdir(parents=True)
    onnx.save(model, str(repo / "fx" / "1" / "model.onnx"))
    (repo / "fx" / "config.pbtxt").write_text("max_batch_size: 8\ndynamic_batching { }\n")
    with _registry(tmp_path, monkeypatch) as registry:
        with pytest.raises(InvalidConfigError, match="fx/1/model.onnx: config turns batching on"):
            import_repository(registry, repo)
        assert registry.list() == []


def test_reimport_with_an_edited_config_is_a_new_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = tmp_path / "repo"
    _add_model(repo / "mlp" / "1" / "model.onnx")
    (repo / "mlp" / "config.pbtxt").write_text("max_batch_size: 8\n")
    with _registry(tmp_path, monkeypatch) as registry:
        first = import_repository(registry, repo, alias="prod")
        assert [(r.registered_version, r.skipped) for r in first] == [(1, False)]
        (repo / "mlp" / "config.pbtxt").write_text("max_batch_size: 16\n")
        edited = import_repository(registry, repo, alias="prod")
        assert [(r.registered_version, r.skipped) for r in edited] == [(2, False)]
        assert registry.get("mlp@prod").config.max_batch_size == 16
        versions = registry.versions("mlp")
        assert versions[0].sha256 == versions[1].sha256  # the bytes are stored once
        again = import_repository(registry, repo)
        assert [(r.registered_version, r.skipped) for r in again] == [(2, True)]
