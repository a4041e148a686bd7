"""LiteRT export of models holding `gru_core.GRU` layers.

`export_litert` writes a `.tflite` flatbuffer that runs with LiteRT's built-in
ops only (no Flex delegate, which `ai-edge-litert` does not ship): every
configuration of the layer converts, with any batch size and length.
`litert_from_function` converts a `tf.function` (a serving signature with its
preprocessing) the same way.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from gru_core.functions import model_function, traced_anew
from gru_core.tracing import portable_ops

SIGNATURE = "serving_default"


def litert_from_function(function: Any, tracked: Sequence[Any] = (), **converter_settings: Any) -> bytes:
    """A LiteRT flatbuffer (built-in ops only) of `function`, a `tf.function` with an input signature.

    `tracked`: the Keras models and other trackables whose variables it
    reads. The function is traced with the recurrences in
    `gru_core.tracing.portable_ops`, written as a SavedModel by Keras's
    `ExportArchive` (converting a concrete function directly would keep the
    weights as variables), and converted with the converter held to
    `TFLITE_BUILTINS`, so an op LiteRT lacks fails here rather than in the
    interpreter. Its signature is `serving_default`. `converter_settings`:
    attributes of `tf.lite.TFLiteConverter`, such as `optimizations`.
    """
    retraced = traced_anew(function)
    with portable_ops(), tempfile.TemporaryDirectory(prefix="gru_core_litert_") as folder:
        archive = keras.export.ExportArchive()
        for resource in tracked:
            archive.track(resource)
        archive.add_endpoint(SIGNATURE, retraced)
        archive.write_out(folder, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(folder, signature_keys=[SIGNATURE])
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        for name, value in converter_settings.items():
            setattr(converter, name, value)
        return converter.convert()


def export_litert(model: keras.Model, filepath: str | Path, input_signature: Sequence[tf.TensorSpec] | None = None,
                  **converter_settings: Any) -> Path:
    """Writes `model` to `filepath` (ending in `.tflite`) with LiteRT's built-in ops only.

    `input_signature`: one `tf.TensorSpec` per input of `model`, in
    `keras.tree.flatten(model.input)` order (default: the inputs' own shapes,
    batch and time dynamic). See `litert_from_function`.
    """
    filepath = Path(filepath)
    if filepath.suffix != ".tflite":
        raise ValueError(f"A LiteRT file ends in .tflite; got {filepath}.")
    filepath.write_bytes(litert_from_function(model_function(model, input_signature), [model],
                                              **converter_settings))
    return filepath
