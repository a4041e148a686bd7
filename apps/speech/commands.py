"""`gru-suite train speech` and `gru-suite predict speech`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from apps.common.distributed import make_strategy
from apps.common.errors import InputError
from apps.common.export import export_serving_model, load_exported
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
from apps.speech.data import (
    CLIP_SAMPLES,
    DATA_SETS,
    SAMPLE_DIR,
    SAMPLE_RATE,
    AudioSplit,
    SpeechData,
    load_audio,
    load_data,
)
from apps.speech.model import (
    FEATURES,
    SpeechServer,
    augment_waveform,
    build_model,
    check_mel_band,
)

SILENCE_PEAK = 1e-4


def training_dataset(
    split: AudioSplit, noise: np.ndarray, batch_size: int, seed: int
) -> tf.data.Dataset:
    """Shuffled, augmented `(waveform, label)` batches, one pass per epoch."""
    noise_tensor = tf.constant(noise)
    return (
        tf.data.Dataset.from_tensor_slices((split.waveforms, split.labels))
        .shuffle(len(split), seed=seed, reshuffle_each_iteration=True)
        .map(
            lambda waveform, label: (augment_waveform(waveform, noise_tensor), label),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        .batch(batch_size)
        .prefetch(tf.data.AUTOTUNE)
    )


def train_speech_model(
    data: SpeechData,
    *,
    cell: str = "gru",
    units: int = 64,
    epochs: int = 30,
    batch_size: int = 32,
    learning_rate: float = 2e-3,
    min_frequency: float = FEATURES.lower_hertz,
    max_frequency: float = FEATURES.upper_hertz,
    seed: int = 0,
    verbose: int = 1,
    strategy: tf.distribute.Strategy | None = None,
    backup_dir: Path | None = None,
    checkpoint_every: int | str = "epoch",
    fresh: bool = False,
) -> keras.Model:
    """Builds and trains a model on `data.train` (validating on `data.validation` if any).

    Adam with a cosine-decaying learning rate; the model (`build_model`, its mel
    filters from `min_frequency` to `max_frequency` Hz) is built in `strategy`'s
    scope. `backup_dir`, `checkpoint_every` and `fresh` are handed to
    `apps.common.training.fit` (resumable runs).
    """
    set_seed(seed)
    steps = epochs * int(np.ceil(len(data.train) / batch_size))
    with (strategy or tf.distribute.get_strategy()).scope():
        model = build_model(
            len(data.labels),
            cell=cell,
            units=units,
            min_frequency=min_frequency,
            max_frequency=max_frequency,
            seed=seed,
        )
        schedule = keras.optimizers.schedules.CosineDecay(
            learning_rate, decay_steps=max(steps, 1), alpha=0.02
        )
        model.compile(
            optimizer=keras.optimizers.Adam(schedule),
            loss="sparse_categorical_crossentropy",
            metrics=["accuracy"],
        )
    validation = None
    if len(data.validation):
        validation = (data.validation.waveforms, data.validation.labels)
    fit(
        model,
        training_dataset(data.train, data.noise, batch_size, seed),
        epochs=epochs,
        validation_data=validation,
        verbose=verbose,
        backup_dir=backup_dir,
        checkpoint_every=checkpoint_every,
        fresh=fresh,
    )
    return model


def served_probabilities(server: SpeechServer, waveforms: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The label probabilities `server` serves for `waveforms`, `batch_size` clips at a time."""
    return np.concatenate([
        server.serve(tf.constant(waveforms[start:start + batch_size]))["probabilities"].numpy()
        for start in range(0, len(waveforms), batch_size)
    ])


def confusion_matrix(true: np.ndarray, predicted: np.ndarray, num_labels: int) -> np.ndarray:
    """`[true label, predicted label]` counts."""
    matrix = np.zeros((num_labels, num_labels), np.int64)
    np.add.at(matrix, (true, predicted), 1)
    return matrix


def save_confusion_matrix(matrix: np.ndarray, labels: list[str], path: Path, title: str) -> None:
    """Draws `matrix` as a labelled heat map with counts to a PNG at `path`."""
    from matplotlib.figure import Figure  # no pyplot: no global state, no display needed

    size = max(4.0, 0.45 * len(labels) + 2)
    figure = Figure(figsize=(size, size))
    axes = figure.subplots()
    axes.imshow(matrix, cmap="Blues")
    axes.set_xticks(range(len(labels)), labels, rotation=90)
    axes.set_yticks(range(len(labels)), labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title)
    for (row, column), count in np.ndenumerate(matrix):
        if count:
            axes.text(
                column,
                row,
                str(count),
                ha="center",
                va="center",
                fontsize=7,
                color="white" if count > matrix.max() / 2 else "black",
            )
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)


def configure_train(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        default="sample",
        help=f"{', '.join(DATA_SETS)} or a folder (LABEL/*.wav or "
        "LABEL_SPEAKER_INDEX.wav); default sample (synthetic)",
    )
    parser.add_argument("--learning-rate", type=float, default=2e-3, help="default 2e-3")
    parser.add_argument(
        "--test-speeds", type=speed_list, default=(1.0,), metavar="S1,S2,...",
        help="run the model on each clip played at these speeds and average (test accuracy "
        "and the export), e.g. 0.85,0.9,1,1.1,1.15; default 1 (once)",
    )
    parser.add_argument(
        "--min-frequency", type=float, default=FEATURES.lower_hertz, metavar="HZ",
        help="bottom of the features' mel filter bank; 100 leaves out hum and the lowest "
        f"pitch, which microphones record differently; default {FEATURES.lower_hertz:g}",
    )
    parser.add_argument(
        "--max-frequency", type=float, default=FEATURES.upper_hertz, metavar="HZ",
        help="top of the features' mel filter bank; 4000 for audio recorded at 8 kHz (fsdd, "
        f"telephone speech); default {FEATURES.upper_hertz:g}",
    )
    add_training_arguments(parser, epochs=60, batch_size=32, units=64)


def speed_list(text: str) -> tuple[float, ...]:
    """Parses `--test-speeds`: comma-separated speed factors between 0.5 and 2."""
    try:
        speeds = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}") from None
    if any(not 0.5 <= speed <= 2.0 for speed in speeds):
        raise argparse.ArgumentTypeError(f"speeds must lie between 0.5 and 2, got {text!r}")
    return speeds


def run_train(args: argparse.Namespace) -> TrainReport:
    for name in ("epochs", "batch_size", "units"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name.replace('_', '-')} must be at least 1.")
    if args.limit is not None and args.limit < 2:
        raise InputError("--limit must be at least 2.")
    try:
        check_mel_band(args.min_frequency, args.max_frequency)
    except ValueError as error:
        raise InputError(f"--min-frequency and --max-frequency: {error}") from None
    data = load_data(args.data, limit=args.limit, seed=args.seed)
    if not len(data.test):
        raise InputError(f"{args.data}: the data set has no test clips.")
    run_dir = run_directory("speech", args)
    with Stopwatch() as watch:
        model = train_speech_model(
            data,
            cell=args.cell,
            units=args.units,
            epochs=args.epochs,
            batch_size=args.batch_size,
            learning_rate=args.learning_rate,
            min_frequency=args.min_frequency,
            max_frequency=args.max_frequency,
            seed=args.seed,
            verbose=args.verbose,
            strategy=make_strategy(args.strategy),
            backup_dir=run_dir / "backup",
            checkpoint_every=args.checkpoint_every,
            fresh=args.fresh,
        )
    server = SpeechServer(model, data.labels, args.test_speeds)
    predicted = np.argmax(served_probabilities(server, data.test.waveforms), axis=-1)
    accuracy = float(np.mean(predicted == data.test.labels))
    matrix_path = run_dir / "confusion_matrix.png"
    save_confusion_matrix(
        confusion_matrix(data.test.labels, predicted, len(data.labels)),
        data.labels,
        matrix_path,
        f"{data.name}, {args.cell}: test accuracy {accuracy:.3f}",
    )
    sizes = f"{len(data.train)}/{len(data.validation)}/{len(data.test)}"
    report = TrainReport(
        app="speech",
        data=data.name,
        cell=args.cell,
        metric="test accuracy",
        value=accuracy,
        train_seconds=watch.seconds,
        epochs=args.epochs,
        extra={
            "clips (train/validation/test)": sizes,
            "labels": len(data.labels),
            "confusion matrix": str(matrix_path),
            "test speeds": ",".join(f"{speed:g}" for speed in args.test_speeds),
        },
    )
    if not args.no_export:
        export_path = export_serving_model("speech", server.serve, [model, server], args.export_dir)
        report.export_path = str(export_path) if export_path else None
    return publish_report(report, args, model)


def configure_predict(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        type=Path,
        required=True,
        help="an export folder, or saved_models/speech for the newest version",
    )
    parser.add_argument(
        "files", nargs="+", type=Path, help="audio files, any rate and channel count"
    )


def run_predict(args: argparse.Namespace) -> list[dict]:
    """Prints one line per file: its label and probability, or why it was skipped.

    A bad file is reported and skipped; the command fails only if every file is bad.
    """
    loaded = load_exported(args.model)  # keeps the signature's variables alive
    serve = loaded.signatures["serving_default"]
    results = []
    for path in args.files:
        try:
            waveform = load_audio(path)
        except InputError as error:
            print(f"skipped: {error}", file=sys.stderr)
            results.append({"file": str(path), "error": str(error)})
            continue
        outputs = serve(waveform=tf.constant(waveform[np.newaxis, :]))
        probabilities = outputs["probabilities"].numpy()[0]
        label = outputs["label"].numpy()[0].decode("utf-8")
        notes = []
        if np.abs(waveform).max() < SILENCE_PEAK:
            notes.append("silent input")
        if waveform.size > CLIP_SAMPLES:
            notes.append(f"{waveform.size / SAMPLE_RATE:.1f} s long: used its loudest second")
        note = f" ({'; '.join(notes)})" if notes else ""
        print(f"{path}: {label} (p={probabilities.max():.3f}){note}")
        results.append(
            {
                "file": str(path),
                "label": label,
                "probability": float(probabilities.max()),
                "probabilities": probabilities,
            }
        )
    if all("error" in result for result in results):
        raise InputError("no file could be read: " + "; ".join(r["error"] for r in results))
    return results


DEMO_WORDS = ("yes", "seven", "stop")


def demo(export_path: str) -> str:
    """Recognizes one sample clip of a few words with an export (for `gru-suite reproduce`)."""
    serve = load_exported(export_path).signatures["serving_default"]
    said = []
    for word in DEMO_WORDS:
        waveform = load_audio(SAMPLE_DIR / word / f"{word}_00.flac")
        label = serve(waveform=tf.constant(waveform[np.newaxis, :]))["label"].numpy()[0]
        said.append(f"{word} -> {label.decode('utf-8')}")
    return "; ".join(said)


register(
    Command(
        "train", "speech", "train a spoken-word recognizer on raw audio", configure_train, run_train,
        quick_args=("--epochs", "25"), demo=demo,
    )
)
register(
    Command(
        "predict",
        "speech",
        "recognize the spoken word in audio files",
        configure_predict,
        run_predict,
    )
)
