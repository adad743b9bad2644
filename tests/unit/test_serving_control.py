"""The server's control plane without a server: what a failed load records and answers, and the
Triton ModelConfig a served model reports."""

from __future__ import annotations

from pathlib import Path

import factories
import pytest
from engine.server import control
from engine.server.control import ServingControl, model_config_dict

import engine
from engine.config import ModelConfig
from engine.repository import config_from_dict, parse_pbtxt


def _repository(tmp_path: Path) -> Path:
    factories.mlp(_folder(tmp_path / "repo" / "m" / "1") / "model.onnx")
    return tmp_path / "repo"


def _folder(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def test_any_load_exception_is_a_failed_load_with_its_request_id(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_load(*args: object, **kwargs: object) -> None:
        raise RuntimeError(f"Unable to cast Python instance to C++ type '?' ({tmp_path})")

    monkeypatch.setattr(control, "load", broken_load)
    plane = ServingControl(_repository(tmp_path))
    code, message, _ = plane.load_model("m", {})
    assert code == "FAILED_PRECONDITION"  # not INTERNAL with pybind's text
    assert message.startswith("load of model 'm' failed; request id ctl-")
    assert "cast" not in message and str(tmp_path) not in message
    _, _, rows = plane.repository_index(False)
    assert rows == [("m", "", "UNAVAILABLE", message.replace("load of model 'm' failed",
                                                               "failed to load"))]


def test_a_bad_config_is_reported_with_its_problem_and_no_path(tmp_path: Path) -> None:
    repo = _repository(tmp_path)
    (repo / "m" / "config.pbtxt").write_text(
        'max_batch_size: 8\ninput [ { name: "x" data_type: TYPE_INT64 dims: [ 32 ] } ]\n')
    plane = ServingControl(repo)
    code, message, _ = plane.load_model("m", {})
    assert code == "FAILED_PRECONDITION"
    assert message == ("load of model 'm' failed: m/1/model.onnx: config declares input 'x' as "
                       "int64 but the model has float32")
    (repo / "m" / "config.pbtxt").write_text("max_batch_size: 99999999999999999999999\n")
    code, message, _ = plane.load_model("m", {})
    assert message.startswith("load of model 'm' failed: m/config.pbtxt: max_batch_size must be "
                              "an int <= 2147483647; was 99999999999999999999999")
    _, _, rows = plane.repository_index(False)
    assert [r[:3] for r in rows] == [("m", "", "UNAVAILABLE")]  # one row per model
    assert str(tmp_path) not in rows[0][3]


@pytest.mark.parametrize(
    ("config", "max_batch_size", "dims", "dynamic"),
    [
        (ModelConfig(), 64, ["32"], True),
        # Triton: max_batch_size > 0 without dynamic_batching is a bounded batch dimension.
        (ModelConfig(max_batch_size=4, batching=False), 4, ["32"], False),
        (ModelConfig(max_batch_size=0), 0, ["-1", "32"], False),
    ],
)
def test_model_config_reports_the_batch_dimension(
    mlp_path: Path, config: ModelConfig, max_batch_size: int, dims: list[str], dynamic: bool
) -> None:
    with engine.load(mlp_path, config=config) as model:
        reported = model_config_dict("m", model)
    assert reported["max_batch_size"] == max_batch_size
    assert [str(d) for d in reported["input"][0]["dims"]] == dims
    assert ("dynamic_batching" in reported) is dynamic


def test_fixed_shape_model_has_no_batch_dimension(fixed_path: Path) -> None:
    with engine.load(fixed_path, config=ModelConfig(max_batch_size=8)) as model:
        reported = model_config_dict("f", model)
    assert reported["max_batch_size"] == 0
    assert reported["input"][0]["dims"] == [2, 3]


def test_model_config_reports_the_parameters_a_config_pbtxt_may_set(mlp_path: Path) -> None:
    config = ModelConfig(intra_op_threads=2, inter_op_threads=0, completion_spin=False,
                         worker_cpus=(0,))
    with engine.load(mlp_path, config=config) as model:
        reported = model_config_dict("m", model)["parameters"]
    assert reported == {
        "intra_op_thread_count": {"string_value": "2"},
        "inter_op_thread_count": {"string_value": "0"},
        "completion_spin": {"string_value": "false"},
        "worker_cpus": {"string_value": "0"},
    }
    # Written back into a config.pbtxt, they read as the same settings.
    text = "\n".join(
        f'parameters {{ key: "{key}" value {{ string_value: "{value["string_value"]}" }} }}'
        for key, value in reported.items())
    read, _, _ = config_from_dict(parse_pbtxt(text), "m", "config.pbtxt")
    assert (read.intra_op_threads, read.inter_op_threads, read.completion_spin) == (2, 0, False)
    assert read.worker_cpus == (0,)


def test_a_failing_model_of_a_repository_is_named_by_its_path_there(tmp_path: Path) -> None:
    # Several models: the operator must see which one failed (engine.load alone says only
    # "model.onnx").
    repo = _repository(tmp_path)
    factories.mlp(_folder(repo / "b" / "1") / "model.onnx")
    (repo / "b" / "config.pbtxt").write_text(
        'max_batch_size: 8\ninput [ { name: "x" data_type: TYPE_FP64 dims: [ 32 ] } ]\n')
    with pytest.raises(engine.errors.InvalidConfigError) as info:
        ServingControl(repo).load_repository()
    assert str(info.value) == ("b/1/model.onnx: config declares input 'x' as float64 but the "
                               "model has float32")
    (repo / "b" / "config.pbtxt").unlink()
    (repo / "b" / "1" / "model.onnx").write_bytes(b"not onnx")
    with pytest.raises(engine.errors.ModelLoadError) as loading:
        ServingControl(repo).load_repository()
    # The operator's terminal may show the file's path; RepositoryModelLoad's client gets a
    # load failure's request id instead (test_any_load_exception_is_a_failed_load...).
    assert str(loading.value).startswith("b/1/model.onnx: cannot load model ")
