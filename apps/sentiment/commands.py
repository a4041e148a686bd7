"""The sentiment app: `gru-suite train|evaluate|predict|explain sentiment`."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import tensorflow as tf

from apps.common.app import (
    App,
    Evaluation,
    Export,
    ExportConfig,
    Fitting,
    Splits,
    Trained,
    TrainConfig,
    Serving,
    batch_size_setting,
    epochs_setting,
    register_app,
    split_seed_setting,
    units_setting,
)
from apps.common.config import Config, DataSource, Text, at_least, fraction, positive, setting
from apps.common.errors import InputError
from apps.common.figures import new_figure, save_figure
from apps.common.text import RESERVED_TOKENS, UNK, TokenIds, build_vocabulary
from apps.sentiment.data import BUILT_IN, load_data
from apps.sentiment.model import (
    LABELS,
    Preprocessor,
    binary_metrics,
    build_model,
    load_artifacts,
    make_serving_function,
    predict_texts,
    save_artifacts,
    training_dataset,
)


@dataclasses.dataclass(frozen=True)
class DataSettings(Config):
    data: str = setting(
        "sample", f"{', '.join(BUILT_IN)} (sample is synthetic), a CSV/TSV file, an aclImdb-style "
        "folder, or a folder with train.tsv/.csv and dev or test tables",
        check=DataSource(BUILT_IN), group="data")
    text_column: str | None = setting(None, "text column of a CSV/TSV file", check=Text(True),
                                      group="data")
    label_column: str | None = setting(None, "label column of a CSV/TSV file", check=Text(True),
                                       group="data")
    seed: int = split_seed_setting()


@dataclasses.dataclass(frozen=True)
class SentimentTrain(TrainConfig, DataSettings):
    epochs: int = epochs_setting(6)
    batch_size: int = batch_size_setting(32)
    units: int = units_setting(32)
    max_length: int = setting(100, "tokens kept per text (the first ones)",
                              check=at_least(1, maximum=100_000), group="model")
    embedding_dim: int = setting(64, "word vector size", check=at_least(1, maximum=4096),
                                 group="model")
    vocabulary_size: int = setting(20000, "most frequent training tokens kept",
                                   check=at_least(len(RESERVED_TOKENS) + 1, maximum=10_000_000),
                                   group="model")
    min_count: int = setting(2, "rarer training tokens become [UNK]", check=at_least(1),
                             group="model")
    subword_buckets: int = setting(
        0, "hash buckets for character 3-5-gram features of every token (vectors for unseen "
        "words); 0 for none", check=at_least(0, maximum=10_000_000), group="model")
    dropout: float = setting(0.3, "dropout rate", check=fraction(), group="model")
    word_dropout: float = setting(0.1, "fraction of training tokens replaced by [UNK] each epoch",
                                  check=fraction(), group="model")
    learning_rate: float = setting(3e-3, "Adam learning rate", check=positive(10.0), group="model")


@dataclasses.dataclass(frozen=True)
class SentimentEvaluate(ExportConfig, DataSettings):
    batch_size: int = setting(256, "texts per call of the export", check=at_least(1, maximum=65_536))


@dataclasses.dataclass(frozen=True)
class SentimentPredict(ExportConfig):
    texts: tuple[str, ...] = setting((), "texts to classify; without any, one text per line of stdin",
                                     positional=True, nargs="*", metavar="TEXT")
    batch_size: int = setting(256, "texts per call of the export", check=at_least(1, maximum=65_536))


@dataclasses.dataclass(frozen=True)
class SentimentExplain(ExportConfig):
    text: str = setting("", "the text to explain", positional=True, check=Text(True), metavar="TEXT")
    output: Path = setting(Path("sentiment_explain.png"), "where the PNG goes")


DEMO_TEXTS = ["not bad at all", "slow at first but worth it", "not good, and not even funny"]


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


class SentimentApp(App):
    """Movie-review sentiment from raw text (a BiGRU over in-graph tokens)."""

    name = "sentiment"
    help = {
        "train": "train a movie-review sentiment classifier and export it",
        "evaluate": "accuracy and F1 of a sentiment export on a data set's held-out split",
        "predict": "classify raw texts (arguments or stdin lines) with a sentiment export",
        "explain": "heatmap of the GRU update gates over the tokens of a text",
    }
    Train = SentimentTrain
    Evaluate = SentimentEvaluate
    Predict = SentimentPredict
    Explain = SentimentExplain
    serving_inputs = ("text",)
    smoke_args = ("--epochs", "1", "--limit", "200", "--units", "8", "--embedding-dim", "8")
    example_inputs = ("not bad at all", "")

    def load_data(self, config: DataSettings) -> Splits:
        data = load_data(
            config.data, text_column=config.text_column, label_column=config.label_column,
            seed=config.seed,
        )
        return Splits(data.name, data.train, None, data.test)

    def train(self, config: SentimentTrain, data: Splits, fitting: Fitting) -> Trained:
        train = data.train.take(config.limit) if config.limit else data.train
        token_ids = TokenIds(
            build_vocabulary(train.texts, max_size=config.vocabulary_size, min_count=config.min_count)
        )
        preprocessor = Preprocessor(token_ids, config.max_length, config.subword_buckets)
        with fitting.scope():
            model = build_model(
                token_ids.size, subword_buckets=config.subword_buckets, cell=config.cell,
                units=config.units, embedding_dim=config.embedding_dim, dropout=config.dropout,
                learning_rate=config.learning_rate, seed=config.seed,
            )
        batches = training_dataset(
            preprocessor, train.texts, train.labels, batch_size=config.batch_size,
            word_dropout=config.word_dropout, seed=config.seed,
        )
        fitting.fit(model, batches, epochs=config.epochs)
        serving = Serving(
            {"serving_default": make_serving_function(model, preprocessor)},
            [model, preprocessor],
            metadata={"labels": list(LABELS), "max_length": config.max_length},
            extras=lambda directory: save_artifacts(directory, model, preprocessor, config.cell),
        )
        return Trained(model, serving, config.epochs, {
            "examples": f"{len(train)} train, {len(data.test)} held out",
            "vocabulary": token_ids.size,
        })

    def evaluate(self, export: Export, data: Splits, config: SentimentEvaluate,
                 output_dir: Path | None) -> Evaluation:
        probabilities = predict_texts(export.signature(), data.test.texts, config.batch_size)
        metrics = binary_metrics(data.test.labels, probabilities)
        return Evaluation(
            "held-out accuracy", metrics["accuracy"],
            {"held-out F1": metrics["f1"], "held-out precision": metrics["precision"],
             "held-out recall": metrics["recall"]},
            summary=f"on {data.name} ({len(data.test)} held-out examples): "
            + ", ".join(f"{name} {value:.4f}" for name, value in metrics.items()),
        )

    def predict(self, export: Export, config: SentimentPredict) -> list[dict[str, Any]]:
        """Prints `label<TAB>probability<TAB>text` per text and returns the same as dicts."""
        texts = list(config.texts)
        if not texts:
            texts = sys.stdin.read().replace("\r\n", "\n").replace("\r", "\n").splitlines()
            if not texts:
                raise InputError("stdin: no texts to predict (the input is empty).")
        probabilities = predict_texts(export.signature(), texts, config.batch_size)
        results = []
        for text, probability in zip(texts, probabilities):
            label = LABELS[int(probability >= 0.5)]
            print(f"{label}\t{probability:.4f}\t{text}")
            results.append({"text": text, "probability": float(probability), "label": label})
        return results

    def explain(self, export: Export, config: SentimentExplain) -> dict[str, Any]:
        """Plots each direction's update gate z_t per unit over the tokens of one text."""
        explained = update_gate_heatmap(export, config.text, config.output)
        probability = explained["probability"]
        print(f"{LABELS[int(probability >= 0.5)]} (p = {probability:.4f}); "
              f"update-gate heatmap written to {explained['path']}")
        means = explained["mean_update"]
        for token, forward, backward in zip(explained["tokens"], means["forward"], means["backward"]):
            print(f"  {token}\tmean z forward {forward:.3f}\tbackward {backward:.3f}")
        return explained

    def page(self, page) -> None:
        import gradio as gr

        text = gr.Textbox(label="A movie review", value=DEMO_TEXTS[1], lines=2)
        button = gr.Button("Classify", variant="primary")
        label = gr.Label(label="Sentiment")
        heatmap = gr.Image(label="GRU update gate z per unit and token", type="filepath")

        def classify(review: str):
            export = page.export()
            positive = float(predict_texts(export.signature(), [review])[0])
            try:
                heatmap_path = update_gate_heatmap(export, review, page.figure_path("update_gates.png"))["path"]
            except InputError as why_not:  # no tokens, or not a GRU: the probability still stands
                gr.Warning(str(why_not))
                heatmap_path = None
            return {LABELS[1]: positive, LABELS[0]: 1.0 - positive}, heatmap_path

        button.click(page.handler(classify), text, [label, heatmap])
        text.submit(page.handler(classify), text, [label, heatmap])

    def demo(self, export: Export) -> str:
        probabilities = predict_texts(export.signature(), DEMO_TEXTS)
        return "; ".join(f"{text!r}: {p:.2f}" for text, p in zip(DEMO_TEXTS, probabilities))


register_app(SentimentApp())
