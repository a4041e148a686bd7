"""LiteRT export of models holding `gru_core.GRU` layers.

`export_litert` writes a `.tflite` flatbuffer that runs with LiteRT's built-in
ops only (no Flex delegate, which `ai-edge-litert` does not ship): every
configuration of the layer converts, with any batch size and length.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import keras
import tensorflow as tf

from gru_core.fused import portable_ops


def export_litert(model: keras.Model, filepath: str | Path, input_signature: Any = None,
                  **converter_settings: Any) -> Path:
    """Writes `model` to `filepath` (ending in `.tflite`) with LiteRT's built-in ops only.

    Keras's `model.export(filepath, format="litert")` with the recurrences
    traced in `gru_core.fused.portable_ops` and the converter held to
    `TFLITE_BUILTINS`, so an op LiteRT lacks fails here rather than in the
    interpreter. `input_signature` and `converter_settings` (attributes of
    `tf.lite.TFLiteConverter`, such as `optimizations`) go to Keras's export.
    """
    filepath = Path(filepath)
    if filepath.suffix != ".tflite":
        raise ValueError(f"A LiteRT file ends in .tflite; got {filepath}.")
    with portable_ops():
        model.export(
            str(filepath), format="litert", input_signature=input_signature, verbose=False,
            target_spec={"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]}, **converter_settings,
        )
    return filepath
