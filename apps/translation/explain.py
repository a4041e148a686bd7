"""The attention alignment of one translation, drawn as a heat map."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file-only backend)
import tensorflow as tf  # noqa: E402


def _tokens(row) -> list[str]:
    return [token.decode("utf-8") for token in row if token]


def plot_alignment(attention_signature, text: str, output: Path | str) -> Path:
    """Writes a PNG of the attention of each output token over the source tokens.

    `attention_signature` is the export's `attention` signature. Rows stop
    at the translation's [END]; the file is written whole or not at all.
    """
    result = attention_signature(text=tf.constant([text]))
    source = _tokens(result["source_tokens"].numpy()[0])
    target = _tokens(result["target_tokens"].numpy()[0])
    if "[END]" in target:
        target = target[: target.index("[END]") + 1]
    weights = result["weights"].numpy()[0][: len(target), : len(source)]

    figure, axes = plt.subplots(
        figsize=(max(4.0, 0.45 * len(source) + 2), max(3.0, 0.4 * len(target) + 1.5))
    )
    axes.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    axes.set_xticks(range(len(source)), source, rotation=60, ha="right")
    axes.set_yticks(range(len(target)), target)
    axes.set_xlabel("source")
    axes.set_ylabel("translation")
    axes.set_title("attention alignment")
    figure.tight_layout()
    output = Path(output)
    partial = output.with_name(f".{output.name}.partial.png")
    figure.savefig(partial, dpi=120)
    plt.close(figure)
    os.replace(partial, output)
    return output
