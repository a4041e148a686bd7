"""The attention alignment of one translation, drawn as a heat map."""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf

from apps.common.figures import new_figure, save_figure


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

    figure = new_figure(max(4.0, 0.45 * len(source) + 2), max(3.0, 0.4 * len(target) + 1.5))
    axes = figure.subplots()
    axes.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    axes.set_xticks(range(len(source)), source, rotation=60, ha="right")
    axes.set_yticks(range(len(target)), target)
    axes.set_xlabel("source")
    axes.set_ylabel("translation")
    axes.set_title("attention alignment")
    figure.tight_layout()
    return save_figure(figure, output)
