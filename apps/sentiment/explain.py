"""What a sentiment model's GRU gates did on a text: the update-gate heatmap of `explain` and the page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tensorflow as tf

from apps.common.app import Export
from apps.common.errors import InputError
from apps.common.figures import new_figure, save_figure
from apps.common.text import RESERVED_TOKENS, UNK
from apps.sentiment.model import LABELS, load_artifacts


def update_gate_heatmap(export: Export, text: str, output: Path) -> dict[str, Any]:
    """Plots each direction's update gate z_t per unit over the tokens of `text` into `output`.

    Returns the PNG's path, the probability, the tokens and each direction's
    mean gate per token.

    z_t near 1 means the GRU took in the token's candidate state; near 0, it
    kept what it had. The backward direction reads the text right to left.
    """
    import gru_core

    version_dir = export.path
    artifacts = load_artifacts(version_dir)
    bidirectional = artifacts.model.get_layer("bidirectional")
    if not isinstance(bidirectional.forward_layer, gru_core.GRU):
        raise InputError(
            f"{version_dir}: explain traces GRU gates, but this model's cell is {artifacts.cell!r}."
        )
    texts = tf.constant([text])
    tokens = [t.decode("utf-8") for t in artifacts.preprocessor.tokens(texts)[0].numpy()]
    if not tokens:
        raise InputError("The text has no tokens to explain.")
    inputs = artifacts.preprocessor(texts)
    vectors = artifacts.model.get_layer("word_vectors")(inputs)
    probability = float(artifacts.model(inputs, training=False).numpy()[0, 0])
    unknown = RESERVED_TOKENS.index(UNK)
    labels = [f"{t}?" if i == unknown else t for t, i in zip(tokens, inputs["token_ids"].numpy()[0])]

    figure = new_figure(max(7.0, 0.5 * len(tokens) + 2), 6.5)
    axes = figure.subplots(2, 1, sharex=True)
    means = {}
    for axis, direction in zip(axes, ("forward", "backward")):
        layer = getattr(bidirectional, f"{direction}_layer")
        update = gru_core.trace_gates(layer, vectors)["update"][0]  # (tokens, units)
        means[direction] = update.mean(axis=1).round(3).tolist()
        image = axis.imshow(update.T, aspect="auto", vmin=0.0, vmax=1.0, cmap="viridis")
        axis.set_ylabel(f"{direction}\nunit")
        figure.colorbar(image, ax=axis, label="update gate z")
    axes[-1].set_xticks(range(len(labels)), labels, rotation=60, ha="right")
    figure.suptitle(
        f"{LABELS[int(probability >= 0.5)]} (p = {probability:.3f})\n"
        "GRU update gate z per unit and token (? = unknown word)"
    )
    figure.tight_layout()
    output = save_figure(figure, output)
    return {"path": str(output), "probability": probability, "tokens": labels, "mean_update": means}
