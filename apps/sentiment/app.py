"""The sentiment app: `gru-suite train|evaluate|predict|explain sentiment`."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import numpy as np

from apps.common.app import App, Evaluation, Export, Fitting, Serving, Trained
from apps.common.errors import InputError
from apps.common.running import register_app
from apps.common.text import TokenIds, build_vocabulary
from apps.sentiment.data import SentimentData, load_data, split
from apps.sentiment.explain import update_gate_heatmap
from apps.sentiment.model import (
    LABELS,
    Preprocessor,
    binary_metrics,
    build_model,
    load_artifacts,
    make_serving_function,
    make_token_ids_function,
    predict_texts,
    reference_token_ids,
    save_artifacts,
    training_dataset,
)
from apps.sentiment.page import DEMO_TEXTS, sentiment_tab
from apps.sentiment.settings import (
    DataSettings,
    SentimentEvaluate,
    SentimentExplain,
    SentimentPredict,
    SentimentTrain,
)


class SentimentApp(App[SentimentData, SentimentData]):
    """Movie-review sentiment from raw text (a BiGRU over in-graph tokens)."""

    name = "sentiment"
    help = {
        "train": "train a sentiment classifier (BiGRU) on labelled texts and export it",
        "evaluate": "score a sentiment export: accuracy, precision, recall, F1",
        "predict": "run a sentiment export on texts (arguments or stdin lines): label, probability",
        "explain": "plot a sentiment export's update gates over the tokens of a text, as a PNG",
    }
    Train = SentimentTrain
    Evaluate = SentimentEvaluate
    Predict = SentimentPredict
    Explain = SentimentExplain
    serving_inputs = ("text",)
    smoke_args = ("--epochs", "1", "--limit", "200", "--units", "8", "--embedding-dim", "8")
    example_inputs = ("not bad at all", "")

    def load_data(self, config: DataSettings) -> SentimentData:
        return load_data(
            config.data, text_column=config.text_column, label_column=config.label_column,
            seed=config.seed,
        )

    def train(self, config: SentimentTrain, data: SentimentData, fitting: Fitting) -> Trained:
        train = data.train.take(config.limit) if config.limit else data.train
        validation = None
        if config.validation_fraction and len(train) >= 2:
            train, validation = split(train, config.validation_fraction, config.seed)
        token_ids = TokenIds(
            build_vocabulary(train.texts, max_size=config.vocabulary_size, min_count=config.min_count)
        )
        preprocessor = Preprocessor(token_ids, config.max_length, config.subword_buckets)
        with fitting.scope():
            model = build_model(token_ids.size, config)
        fixed_lengths = fitting.compiles_with_xla(model)
        batches = training_dataset(
            preprocessor, train.texts, train.labels, batch_size=config.batch_size,
            word_dropout=config.word_dropout, seed=config.seed, fixed_lengths=fixed_lengths,
        )
        validation_batches = None if validation is None else training_dataset(
            preprocessor, validation.texts, validation.labels, batch_size=config.batch_size,
            shuffle=False, fixed_lengths=fixed_lengths,
        )
        fitting.fit(model, batches, epochs=config.epochs, validation_data=validation_batches)
        serving = Serving(
            {"serving_default": make_serving_function(model, preprocessor)},
            [model, preprocessor],
            metadata={"labels": list(LABELS), "max_length": config.max_length},
            extras=lambda directory: save_artifacts(directory, model, preprocessor, config.cell),
        )
        return Trained(model, serving, config.epochs, {
            "examples": f"{len(train)} train, {len(validation or ())} validation, {len(data.test)} held out",
            "vocabulary": token_ids.size,
        })

    def evaluate(self, export: Export, data: SentimentData, config: SentimentEvaluate,
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
        sentiment_tab(page)

    def portable_serving(self, export: Export) -> Serving:
        """The model on token ids, rebuilt from the export's Keras model: what a LiteRT or ONNX
        file serves (`from_file` tokenizes for it)."""
        artifacts = load_artifacts(export.path)
        if artifacts.preprocessor.subword_buckets:
            raise InputError(f"{export.path}: its subword features hash with FarmHash, which no client "
                             "tokenizer repeats yet; train with --subword-buckets 0 to convert it.")
        return Serving({"serving_default": make_token_ids_function(artifacts.model)}, [artifacts.model],
                       export.metadata)

    def from_file(self, export: Export) -> Export:
        """A file's token-id signature behind the Python tokenizer, so it takes `text` as the
        SavedModel does (the vocabulary is the export's `extra/vocabulary.txt`)."""
        preprocessor = load_artifacts(export.path).preprocessor
        vocabulary = {word: index for index, word in enumerate(preprocessor.token_ids.vocabulary)}
        run = export.signature()

        def serve(text) -> dict[str, Any]:
            texts = [value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)
                     for value in np.asarray(text).reshape(-1).tolist()]
            return run(token_ids=reference_token_ids(texts, vocabulary, preprocessor.max_length))

        return dataclasses.replace(export, signatures={"serving_default": serve})

    def demo(self, export: Export) -> str:
        probabilities = predict_texts(export.signature(), DEMO_TEXTS)
        return "; ".join(f"{text!r}: {p:.2f}" for text, p in zip(DEMO_TEXTS, probabilities))


register_app(SentimentApp())
