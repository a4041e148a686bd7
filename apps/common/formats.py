"""An export's signatures as LiteRT or ONNX files beside its SavedModel, and loading them back.

`write_format` converts each endpoint of an app's portable `Serving` (its
`serving_default` with the preprocessing, raw inputs in; or, for translation
and chatbot, the encoder and one decoder step) with
`gru_core.litert.litert_from_function` or `gru_core.onnx.onnx_from_function`.
The first endpoint goes to `model.tflite` or `model.onnx` in the export's
version folder, any other to `model.NAME.tflite` or `model.NAME.onnx`, and
`model.tflite.json` or `model.onnx.json` beside the first describes them all:
each signature's file and input and output specs, and the export's metadata,
what a client needs. `load_file_export` opens them as an `Export` whose
signatures run in ai-edge-litert or ONNX Runtime and answer like a
SavedModel's, so every `predict` runs on them unchanged.
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


def format_file(file_format: str, quantized: bool = False, signature: str | None = None) -> str:
    """The file a format is written to: `model.tflite`, `model.int8.tflite` when quantized, and
    `model.NAME.tflite` (`model.NAME.int8.tflite`) for a further `signature`."""
    name = Path(FORMAT_FILES[file_format])
    parts = [name.stem] + ([signature] if signature else []) + (["int8"] if quantized else [])
    return ".".join(parts) + name.suffix


def write_format(serving: Serving, version_dir: Path, file_format: str, quantized: bool = False) -> Path:
    """Writes each of `serving`'s endpoints as `file_format` into `version_dir`; returns the first's file.

    `quantized`: dynamic-range int8 (weights stored as int8, activations
    quantized as it runs): LiteRT's `Optimize.DEFAULT` without a
    representative data set, or ONNX Runtime's `quantize_dynamic` (its
    matrix products; the native GRU op stays float32, as ONNX Runtime
    quantizes no GRU).
    """
    signatures = {}
    for index, (name, function) in enumerate(serving.endpoints.items()):
        path = version_dir / format_file(file_format, quantized, name if index else None)
        content = _converted(function, serving.tracked, file_format, quantized)
        write_atomically(path, lambda partial: Path(partial).write_bytes(content), path.suffix)
        concrete = function.get_concrete_function()
        signatures[name] = {
            "file": path.name,
            "inputs": [_spec(spec, spec.name) for spec in function.input_signature],
            "outputs": [_spec(spec, output) for output, spec in sorted(concrete.structured_outputs.items())],
        }
    main = version_dir / format_file(file_format, quantized)
    description = {
        "format": file_format,
        "quantized": "dynamic int8" if quantized else "none",
        "signatures": signatures,
        "metadata": serving.metadata,
    }
    text = json.dumps(description, indent=2)
    write_atomically(description_path(main), lambda partial: Path(partial).write_text(text), ".json")
    return main


def _converted(function: Any, tracked: list, file_format: str, quantized: bool) -> bytes:
    if file_format == "litert":
        from gru_core.litert import litert_from_function

        settings = {"optimizations": [tf.lite.Optimize.DEFAULT]} if quantized else {}
        return litert_from_function(function, tracked, **settings)
    from gru_core.onnx import onnx_from_function

    content = onnx_from_function(function).SerializeToString()
    return _quantized_onnx(content) if quantized else content


def _quantized_onnx(content: bytes) -> bytes:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="gru_suite_onnx_") as folder:
        source, target = Path(folder) / "float.onnx", Path(folder) / "int8.onnx"
        source.write_bytes(content)
        quantize_dynamic(source, target, weight_type=QuantType.QInt8)
        return target.read_bytes()


class FileSignature:
    """One signature of a LiteRT or ONNX file, called like a SavedModel signature.

    Takes its inputs by name (arrays or tensors of the input's rank and
    kind) and returns a dict of tensors (`numpy` returns arrays);
    `structured_input_signature` and `structured_outputs` describe them as
    a concrete function does.
    """

    def __init__(self, path: Path, file_format: str, signature: dict[str, Any]):
        self.path = path
        self.format = file_format
        self._inputs = {item["name"]: tf.TensorSpec(item["shape"], item["dtype"], name=item["name"])
                        for item in signature["inputs"]}
        self.structured_input_signature = ((), dict(self._inputs))
        self.structured_outputs = {item["name"]: tf.TensorSpec(item["shape"], item["dtype"], name=item["name"])
                                   for item in signature["outputs"]}
        if file_format == "litert":
            from ai_edge_litert.interpreter import Interpreter

            self._run = Interpreter(model_path=str(path)).get_signature_runner("serving_default")
        else:
            import onnxruntime

            from gru_core.onnx import OUTPUT_SUFFIX

            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            names = [output.name.removesuffix(OUTPUT_SUFFIX) if output.name.removesuffix(OUTPUT_SUFFIX) in self._inputs
                     else output.name for output in session.get_outputs()]
            self._run = lambda **feeds: dict(zip(names, session.run(None, feeds)))

    def numpy(self, **inputs: Any) -> dict[str, np.ndarray]:
        """The signature's outputs as arrays (for an empty batch, empty ones of their shapes)."""
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
        if any(value.ndim and not len(value) for value in feeds.values()):
            # An empty batch never reaches the runtime: ONNX Runtime's GRU crashes the process on one.
            return {name: np.zeros([0] + [size or 0 for size in spec.shape.as_list()[1:]], spec.dtype.as_numpy_dtype)
                    for name, spec in self.structured_outputs.items()}
        try:
            return self._run(**feeds)
        except Exception as error:  # each runtime raises its own types
            raise InputError(f"{self.path}: the {self.format} runtime refused the inputs ({first_line(error)}).") from None

    def __call__(self, **inputs: Any) -> dict[str, tf.Tensor]:
        return {name: tf.constant(value) for name, value in self.numpy(**inputs).items()}


def load_file_export(path: Path) -> Export:
    """A `model.tflite` or `model.onnx` written by `write_format`, as an `Export` of its signatures."""
    file_format = next((name for name, file in FORMAT_FILES.items() if Path(file).suffix == path.suffix), None)
    if file_format is None:
        raise InputError(f"--model {path}: not a LiteRT (.tflite) or ONNX (.onnx) file.")
    try:
        description = json.loads(description_path(path).read_text())
        signatures = dict(description["signatures"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise InputError(f"--model {path}: no readable {description_path(path).name} beside it "
                         f"({first_line(error)}); "
                         "write both with `gru-suite export APP --format ...`.") from None
    missing = [signature["file"] for signature in signatures.values() if not path.with_name(signature["file"]).is_file()]
    if missing:
        raise InputError(f"--model {path}: {', '.join(missing)} is missing beside it; "
                         "write them again with `gru-suite export APP --format ...`.")
    try:
        loaded = {name: FileSignature(path.with_name(signature["file"]), file_format, signature)
                  for name, signature in signatures.items()}
    except ImportError:
        raise InputError(f"--model {path}: running a {file_format} file needs {RUNTIMES[file_format]} "
                         f"(pip install -e \".[{file_format}]\").") from None
    return Export(loaded, dict(description["metadata"]), path.parent)
