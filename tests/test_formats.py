"""`gru-suite export APP --format litert|onnx`: an export's serving signature as a file beside its
SavedModel that answers what the SavedModel answers, and `--model FILE` everywhere an export is read."""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from apps import cli
from apps.common.errors import InputError
from apps.common.export import load_exported
from apps.common.files import current_umask
from apps.common.formats import description_path, load_file_export
from apps.common.settings import FORMAT_FILES
from apps.registry import load_app_packages

pytest.importorskip("ai_edge_litert", reason="the litert extra is not installed")
pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")

# A client's script that imports neither this project nor TensorFlow.
CLIENT = """
import json, sys
import numpy as np
path, prices = sys.argv[1], np.asarray(json.loads(sys.argv[2]), np.float32)
if path.endswith(".tflite"):
    from ai_edge_litert.interpreter import Interpreter
    outputs = Interpreter(model_path=path).get_signature_runner("serving_default")(prices=prices)
else:
    import onnxruntime
    session = onnxruntime.InferenceSession(path)
    outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, {"prices": prices})))
print(json.dumps({name: value.tolist() for name, value in outputs.items()}))
"""


@pytest.fixture(scope="module")
def stock_version(smoke_exports, tmp_path_factory):
    """A copy of the stock smoke export with both formats written beside it by the CLI."""
    load_app_packages()
    version = tmp_path_factory.mktemp("formats") / "stock" / "1"
    shutil.copytree(smoke_exports["stock"].path, version)
    for file_format in FORMAT_FILES:
        cli.run(["export", "stock", "--model", str(version), "--format", file_format])
    return version


def _windows(length: int) -> np.ndarray:
    steps = np.random.default_rng(3).normal(0, 0.02, size=(4, length))
    return (100 * np.exp(np.cumsum(steps, axis=1))).astype(np.float32)


@pytest.mark.parametrize("file_format", sorted(FORMAT_FILES))
def test_each_format_answers_what_the_savedmodel_answers(stock_version, file_format):
    path = stock_version / FORMAT_FILES[file_format]
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~current_umask()
    description = json.loads(description_path(path).read_text())
    assert description["format"] == file_format and description["metadata"]["app"] == "stock"
    assert [item["name"] for item in description["inputs"]] == ["prices"]
    saved = load_exported(stock_version).signatures["serving_default"]
    window = saved.structured_input_signature[1]["prices"].shape[1]
    prices = _windows(window)
    expected = {name: value.numpy() for name, value in saved(prices=tf.constant(prices)).items()}
    got = load_file_export(path).signature()(prices=prices)
    assert sorted(got) == sorted(expected) == ["forecast", "quantiles"]
    for name, value in expected.items():
        np.testing.assert_allclose(got[name].numpy(), value, rtol=1e-5)
    client = subprocess.run([sys.executable, "-c", CLIENT, str(path), json.dumps(prices.tolist())],
                            capture_output=True, text=True, check=True)
    answered = json.loads(client.stdout.strip().splitlines()[-1])
    for name, value in expected.items():
        np.testing.assert_allclose(np.asarray(answered[name]), value, rtol=1e-5)


def test_predict_and_evaluate_take_the_files(stock_version, capsys):
    lines = {}
    for model in (stock_version, *(stock_version / file for file in FORMAT_FILES.values())):
        cli.run(["predict", "stock", "--model", str(model)])
        lines[model.name] = capsys.readouterr().out.strip().splitlines()[-1]
    assert len(set(lines.values())) == 1, lines
    evaluation = cli.run(["evaluate", "stock", "--model", str(stock_version / FORMAT_FILES["onnx"])])
    assert np.isfinite(evaluation.value)


def test_bad_requests_get_one_line(stock_version, tmp_path, rejected, monkeypatch):
    with pytest.raises(InputError, match="give the SavedModel's folder"):
        cli.run(["export", "stock", "--model", str(stock_version / "model.onnx"), "--format", "litert"])
    assert "--format" in rejected(["export", "stock", "--model", str(stock_version), "--format", "coreml"])
    lonely = tmp_path / "model.onnx"
    shutil.copy(stock_version / "model.onnx", lonely)
    with pytest.raises(InputError, match=r"no readable model\.onnx\.json"):
        cli.run(["predict", "stock", "--model", str(lonely)])
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    with pytest.raises(InputError, match=r"not a LiteRT \(\.tflite\) or ONNX \(\.onnx\) file"):
        cli.run(["predict", "stock", "--model", str(other)])
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as on a machine without the onnx extra
    with pytest.raises(InputError, match=r'needs onnxruntime \(pip install -e "\.\[onnx\]"\)'):
        cli.run(["predict", "stock", "--model", str(stock_version / "model.onnx")])


def test_only_apps_that_convert_have_the_export_command(rejected):
    load_app_packages()
    assert "invalid choice" in rejected(["export", "speech", "--format", "onnx"])
