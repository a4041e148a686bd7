"""An export's serving signature as a LiteRT or ONNX file beside its SavedModel, and loading one back.

`write_format` converts an app's `serving_default` (with its preprocessing,
raw inputs in) with `gru_core.litert.litert_from_function` or
`gru_core.onnx.onnx_from_function` and writes `model.tflite` or
`model.onnx` into the export's version folder, with `model.tflite.json` or
`model.onnx.json` beside it:
the input and output specs and the export's metadata, what a client needs.
`load_file_export` opens such a file as an `Export` whose `signature()`
runs it in ai-edge-litert or ONNX Runtime and answers like a SavedModel's
signature, so every `predict` runs on it unchanged.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf

from apps.common.app import Export, Serving
from apps.common.errors import InputError, first_line
from apps.common.files import write_atomically
from apps.common.settings import FORMAT_FILES

# --format -> the package that runs its file (the extra of the same name installs it).
RUNTIMES = {"litert": "ai-edge-litert", "onnx": "onnxruntime"}


def description_path(path: Path) -> Path:
    """The JSON beside a format's file that describes it (`model.onnx` -> `model.onnx.json`)."""
    return path.with_name(path.name + ".json")


def _spec(spec: tf.TensorSpec, name: str) -> dict[str, Any]:
    return {"name": name, "dtype": spec.dtype.name, "shape": [None if size is None else int(size)
                                                            for size in spec.shape]}


def format_file(file_format: str, quantized: bool = False) -> str:
    """The file a format is written to: `model.tflite`, or `model.int8.tflite` when quantized."""
    name = Path(FORMAT_FILES[file_format])
    return f"{name.stem}.int8{name.suffix}" if quantized else name.name


def write_format(serving: Serving, version_dir: Path, file_format: str, quantized: bool = False) -> Path:
    """Writes `serving`'s `serving_default` as `file_format` into `version_dir`; returns the file.

    `quantized`: dynamic-range int8 (weights stored as int8, activations
    quantized as it runs): LiteRT's `Optimize.DEFAULT` without a
    representative data set, or ONNX Runtime's `quantize_dynamic` (its
    matrix products; the native GRU op stays float32, as ONNX Runtime
    quantizes no GRU).
    """
    function = serving.endpoints["serving_default"]
    if file_format == "litert":
        from gru_core.litert import litert_from_function

        settings = {"optimizations": [tf.lite.Optimize.DEFAULT]} if quantized else {}
        content = litert_from_function(function, serving.tracked, **settings)
    else:
        from gru_core.onnx import onnx_from_function

        content = onnx_from_function(function).SerializeToString()
        if quantized:
            content = _quantized_onnx(content)
    path = version_dir / format_file(file_format, quantized)
    write_atomically(path, lambda partial: Path(partial).write_bytes(content), path.suffix)
    concrete = function.get_concrete_function()
    description = {
        "format": file_format,
        "file": path.name,
        "quantized": "dynamic int8" if quantized else "none",
        "inputs": [_spec(spec, spec.name) for spec in function.input_signature],
        "outputs": [_spec(spec, name) for name, spec in sorted(concrete.structured_outputs.items())],
        "metadata": serving.metadata,
    }
    text = json.dumps(description, indent=2)
    write_atomically(description_path(path), lambda partial: Path(partial).write_text(text), ".json")
    return path


def _quantized_onnx(content: bytes) -> bytes:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="gru_suite_onnx_") as folder:
        source, target = Path(folder) / "float.onnx", Path(folder) / "int8.onnx"
        source.write_bytes(content)
        quantize_dynamic(source, target, weight_type=QuantType.QInt8)
        return target.read_bytes()


class FileSignature:
    """A LiteRT or ONNX file's `serving_default`, called like a SavedModel signature.

    Takes its inputs by name (arrays or tensors of the input's rank and
    kind) and returns a dict of tensors; `structured_input_signature` and
    `structured_outputs` describe them as a concrete function does.
    """

    def __init__(self, path: Path, description: dict[str, Any]):
        self.path = path
        self.format = description["format"]
        self._inputs = {item["name"]: tf.TensorSpec(item["shape"], item["dtype"], name=item["name"])
                        for item in description["inputs"]}
        self.structured_input_signature = ((), dict(self._inputs))
        self.structured_outputs = {item["name"]: tf.TensorSpec(item["shape"], item["dtype"], name=item["name"])
                                   for item in description["outputs"]}
        if description["format"] == "litert":
            from ai_edge_litert.interpreter import Interpreter

            self._run = Interpreter(model_path=str(path)).get_signature_runner("serving_default")
        else:
            import onnxruntime

            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            self._run = lambda **feeds: dict(zip([o.name for o in session.get_outputs()],
                                                 session.run(None, feeds)))

    def __call__(self, **inputs: Any) -> dict[str, tf.Tensor]:
        missing = sorted(set(self._inputs) - set(inputs))
        if missing:
            raise InputError(f"{self.path}: missing input {', '.join(missing)}.")
        feeds = {}
        for name, spec in self._inputs.items():
            value = np.asarray(inputs[name])
            if value.ndim != len(spec.shape) or not np.can_cast(value.dtype, spec.dtype.as_numpy_dtype, "same_kind"):
                raise InputError(f"{self.path}: input {name} must be {spec.dtype.name} with "
                                 f"{len(spec.shape)} dimensions, got {value.dtype} with shape {value.shape}.")
            feeds[name] = value.astype(spec.dtype.as_numpy_dtype)
        try:
            outputs = self._run(**feeds)
        except Exception as error:  # each runtime raises its own types
            raise InputError(f"{self.path}: the {self.format} runtime refused the inputs ({first_line(error)}).") from None
        return {name: tf.constant(value) for name, value in outputs.items()}


def load_file_export(path: Path) -> Export:
    """A `model.tflite` or `model.onnx` written by `write_format`, as an `Export` (one signature)."""
    file_format = next((name for name, file in FORMAT_FILES.items() if Path(file).suffix == path.suffix), None)
    if file_format is None:
        raise InputError(f"--model {path}: not a LiteRT (.tflite) or ONNX (.onnx) file.")
    try:
        description = json.loads(description_path(path).read_text())
    except (OSError, ValueError) as error:
        raise InputError(f"--model {path}: no readable {description_path(path).name} beside it "
                         f"({first_line(error)}); "
                         "write both with `gru-suite export APP --format ...`.") from None
    try:
        signature = FileSignature(path, description)
    except ImportError:
        raise InputError(f"--model {path}: running a {file_format} file needs {RUNTIMES[file_format]} "
                         f"(pip install -e \".[{file_format}]\").") from None
    return Export({"serving_default": signature}, dict(description["metadata"]), path.parent)
