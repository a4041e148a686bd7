"""`gru-suite train|evaluate|predict|explain sentiment`."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import tensorflow as tf

from apps.common.distributed import make_strategy
from apps.common.errors import InputError
from apps.common.export import DEFAULT_ROOT, existing_versions, export_serving_model, load_exported
from apps.common.text import RESERVED_TOKENS, UNK, TokenIds, build_vocabulary
from apps.common.training import (
    Stopwatch,
    TrainReport,
    add_training_arguments,
    fit,
    publish_report,
    run_directory,
    set_seed,
)
from apps.registry import Command, register
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

APP = "sentiment"
DEFAULT_MODEL_DIR = DEFAULT_ROOT / APP


def _add_data_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data")
    group.add_argument(
        "--data", default="sample",
        help=f"{', '.join(BUILT_IN)} (default sample, synthetic), a CSV/TSV file, an "
             "aclImdb-style folder, or a folder with train.tsv/.csv and dev or test tables",
    )
    group.add_argument("--text-column", default=None, help="text column of a CSV/TSV file")
    group.add_argument("--label-column", default=None, help="label column of a CSV/TSV file")


def _positive(name: str, value: float) -> None:
    if value <= 0:
        raise InputError(f"--{name} must be positive, got {value}.")


def _rate(name: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise InputError(f"--{name} must be in [0, 1), got {value}.")


def configure_train(parser: argparse.ArgumentParser) -> None:
    _add_data_arguments(parser)
    add_training_arguments(parser, epochs=6, batch_size=32, units=32)
    group = parser.add_argument_group("model")
    group.add_argument("--max-length", type=int, default=100,
                       help="tokens kept per text (the first ones), default 100")
    group.add_argument("--embedding-dim", type=int, default=64, help="word vector size, default 64")
    group.add_argument("--vocabulary-size", type=int, default=20000,
                       help="most frequent training tokens kept, default 20000")
    group.add_argument("--min-count", type=int, default=2,
                       help="rarer training tokens become [UNK], default 2")
    group.add_argument("--subword-buckets", type=int, default=0,
                       help="hash buckets for character 3-5-gram features of every token "
                            "(vectors for unseen words); default 0, none")
    group.add_argument("--dropout", type=float, default=0.3, help="default 0.3")
    group.add_argument("--word-dropout", type=float, default=0.1,
                       help="fraction of training tokens replaced by [UNK] each epoch, default 0.1")
    group.add_argument("--learning-rate", type=float, default=3e-3, help="Adam, default 3e-3")


def run_train(args: argparse.Namespace) -> TrainReport:
    for name in ("epochs", "batch_size", "units", "max_length", "embedding_dim",
                 "vocabulary_size", "min_count", "learning_rate"):
        _positive(name.replace("_", "-"), getattr(args, name))
    if args.subword_buckets < 0:
        raise InputError(f"--subword-buckets must not be negative, got {args.subword_buckets}.")
    _rate("dropout", args.dropout)
    _rate("word-dropout", args.word_dropout)
    if args.limit is not None:
        _positive("limit", args.limit)
    set_seed(args.seed)
    data = load_data(
        args.data, text_column=args.text_column, label_column=args.label_column, seed=args.seed
    )
    train = data.train.take(args.limit) if args.limit else data.train
    token_ids = TokenIds(
        build_vocabulary(train.texts, max_size=args.vocabulary_size, min_count=args.min_count)
    )
    preprocessor = Preprocessor(token_ids, args.max_length, args.subword_buckets)
    with make_strategy(args.strategy).scope():
        model = build_model(
            token_ids.size, subword_buckets=args.subword_buckets, cell=args.cell, units=args.units,
            embedding_dim=args.embedding_dim, dropout=args.dropout,
            learning_rate=args.learning_rate, seed=args.seed,
        )
    batches = training_dataset(
        preprocessor, train.texts, train.labels, batch_size=args.batch_size,
        word_dropout=args.word_dropout, seed=args.seed,
    )
    with Stopwatch() as watch:
        fit(
            model, batches, epochs=args.epochs, verbose=args.verbose,
            backup_dir=run_directory(APP, args) / "backup",
            checkpoint_every=args.checkpoint_every, fresh=args.fresh,
        )
    serve = make_serving_function(model, preprocessor)
    metrics = binary_metrics(data.test.labels, predict_texts(serve, data.test.texts))
    export_path = None
    if not args.no_export:
        export_path = export_serving_model(
            APP, serve, [model, preprocessor], root=args.export_dir,
            extras=lambda directory: save_artifacts(directory, model, preprocessor, args.cell),
        )
    report = TrainReport(
        app=APP, data=data.name, cell=args.cell, metric="held-out accuracy",
        value=metrics["accuracy"], train_seconds=watch.seconds, epochs=args.epochs,
        export_path=str(export_path) if export_path else None,
        extra={
            "held-out F1": round(metrics["f1"], 4),
            "examples": f"{len(train)} train, {len(data.test)} held out",
            "vocabulary": token_ids.size,
        },
    )
    return publish_report(report, args, model)


def configure_evaluate(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR,
                        help=f"an export, or a folder of versions (newest used); default {DEFAULT_MODEL_DIR}")
    _add_data_arguments(parser)
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the held-out split of data without one (as in train), default 0")
    parser.add_argument("--batch-size", type=int, default=256, help="default 256")


def run_evaluate(args: argparse.Namespace) -> dict[str, float]:
    """Scores an export on the held-out split (test or dev) of `--data`."""
    _positive("batch-size", args.batch_size)
    loaded = load_exported(args.model)
    data = load_data(
        args.data, text_column=args.text_column, label_column=args.label_column, seed=args.seed
    )
    probabilities = predict_texts(
        loaded.signatures["serving_default"], data.test.texts, args.batch_size
    )
    metrics = binary_metrics(data.test.labels, probabilities)
    print(
        f"{args.model} on {data.name} ({len(data.test)} held-out examples): "
        + ", ".join(f"{name} {value:.4f}" for name, value in metrics.items())
    )
    return metrics


def configure_predict(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("texts", nargs="*", metavar="TEXT",
                        help="texts to classify; without any, one text per line of stdin")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR,
                        help=f"an export, or a folder of versions (newest used); default {DEFAULT_MODEL_DIR}")
    parser.add_argument("--batch-size", type=int, default=256, help="default 256")


def run_predict(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Prints `label<TAB>probability<TAB>text` per text and returns the same as dicts."""
    _positive("batch-size", args.batch_size)
    texts = list(args.texts)
    if not texts:
        texts = sys.stdin.read().replace("\r\n", "\n").replace("\r", "\n").splitlines()
        if not texts:
            raise InputError("stdin: no texts to predict (the input is empty).")
    loaded = load_exported(args.model)
    probabilities = predict_texts(loaded.signatures["serving_default"], texts, args.batch_size)
    results = []
    for text, probability in zip(texts, probabilities):
        label = LABELS[int(probability >= 0.5)]
        print(f"{label}\t{probability:.4f}\t{text}")
        results.append({"text": text, "probability": float(probability), "label": label})
    return results


def configure_explain(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", metavar="TEXT", help="the text to explain")
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_DIR,
                        help=f"an export, or a folder of versions (newest used); default {DEFAULT_MODEL_DIR}")
    parser.add_argument("--output", type=Path, default=Path("sentiment_explain.png"),
                        help="where the PNG goes, default sentiment_explain.png")


def _version_dir(model_dir: Path) -> Path:
    if (model_dir / "saved_model.pb").is_file():
        return model_dir
    versions = existing_versions(model_dir)
    if not versions:
        raise InputError(f"{model_dir}: not a SavedModel folder and no numbered versions inside it.")
    return model_dir / str(versions[-1])


def run_explain(args: argparse.Namespace) -> dict[str, Any]:
    """Plots each direction's update gate z_t per unit over the tokens of one text.

    z_t near 1 means the GRU took in the token's candidate state; near 0, it
    kept what it had. The backward direction reads the text right to left.
    """
    # Imported here: only this command needs them.
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import gru_core

    version_dir = _version_dir(args.model)
    artifacts = load_artifacts(version_dir)
    bidirectional = artifacts.model.get_layer("bidirectional")
    if not isinstance(bidirectional.forward_layer, gru_core.GRU):
        raise InputError(
            f"{version_dir}: explain traces GRU gates, but this model's cell is {artifacts.cell!r}."
        )
    texts = tf.constant([args.text])
    tokens = [t.decode("utf-8") for t in artifacts.preprocessor.tokens(texts)[0].numpy()]
    if not tokens:
        raise InputError("The text has no tokens to explain.")
    inputs = artifacts.preprocessor(texts)
    vectors = artifacts.model.get_layer("word_vectors")(inputs)
    probability = float(artifacts.model(inputs, training=False).numpy()[0, 0])
    unknown = RESERVED_TOKENS.index(UNK)
    labels = [f"{t}?" if i == unknown else t for t, i in zip(tokens, inputs["token_ids"].numpy()[0])]

    figure, axes = plt.subplots(2, 1, figsize=(max(7.0, 0.5 * len(tokens) + 2), 6.5), sharex=True)
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
    output = args.output
    output.parent.mkdir(parents=True, exist_ok=True)
    # Written beside the target and renamed, so a reader never sees half a PNG.
    handle, partial = tempfile.mkstemp(prefix=".partial-", suffix=".png", dir=output.parent)
    os.close(handle)
    try:
        figure.savefig(partial, dpi=120)
        os.replace(partial, output)
    finally:
        plt.close(figure)
        if os.path.exists(partial):
            os.remove(partial)
    print(f"{LABELS[int(probability >= 0.5)]} (p = {probability:.4f}); "
          f"update-gate heatmap written to {output}")
    for token, forward, backward in zip(labels, means["forward"], means["backward"]):
        print(f"  {token}\tmean z forward {forward:.3f}\tbackward {backward:.3f}")
    return {"path": str(output), "probability": probability, "tokens": labels, "mean_update": means}


DEMO_TEXTS = ["not bad at all", "slow at first but worth it", "not good, and not even funny"]


def demo(export_path: str) -> str:
    """Classifies a few texts with an export (for `gru-suite reproduce`)."""
    loaded = load_exported(export_path)
    probabilities = predict_texts(loaded.signatures["serving_default"], DEMO_TEXTS)
    return "; ".join(f"{text!r}: {p:.2f}" for text, p in zip(DEMO_TEXTS, probabilities))


register(Command("train", APP, "train a movie-review sentiment classifier and export it",
                 configure_train, run_train, demo=demo))
register(Command("evaluate", APP, "accuracy and F1 of a sentiment export on a data set's held-out split",
                 configure_evaluate, run_evaluate))
register(Command("predict", APP, "classify raw texts (arguments or stdin lines) with a sentiment export",
                 configure_predict, run_predict))
register(Command("explain", APP, "heatmap of the GRU update gates over the tokens of a text",
                 configure_explain, run_explain))
