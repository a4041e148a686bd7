"""The speech app: `gru-suite train|evaluate|predict speech` (spoken words)."""

from __future__ import annotations

import dataclasses
import importlib
import sys
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from apps.common.app import (
    App,
    Evaluation,
    Export,
    ExportConfig,
    Fitting,
    Serving,
    Splits,
    Trained,
    TrainConfig,
    batch_size_setting,
    epochs_setting,
    register_app,
    split_seed_setting,
    units_setting,
)
from apps.common.config import (
    Config,
    ConfigError,
    DataSource,
    Number,
    NumberList,
    positive,
    setting,
)
from apps.common.errors import InputError
from apps.common.figures import new_figure, save_figure
from apps.common.training import fit, set_seed
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
    MelBandSettings,
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


def served_probabilities(serve, waveforms: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The label probabilities a speech `serving_default` gives `waveforms`, `batch_size` clips at a time."""
    return np.concatenate([
        serve(waveform=tf.constant(waveforms[start:start + batch_size]))["probabilities"].numpy()
        for start in range(0, len(waveforms), batch_size)
    ])


def confusion_matrix(true: np.ndarray, predicted: np.ndarray, num_labels: int) -> np.ndarray:
    """`[true label, predicted label]` counts."""
    matrix = np.zeros((num_labels, num_labels), np.int64)
    np.add.at(matrix, (true, predicted), 1)
    return matrix


def save_confusion_matrix(matrix: np.ndarray, labels: list[str], path: Path, title: str) -> None:
    """Draws `matrix` as a labelled heat map with counts to a PNG at `path`."""
    size = max(4.0, 0.45 * len(labels) + 2)
    figure = new_figure(size, size)
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
    save_figure(figure, path)


# Speeds a clip may be played at for speed-averaged serving.
SPEEDS = NumberList(Number(float, 0.5, 2.0))


@dataclasses.dataclass(frozen=True)
class DataSettings(Config):
    data: str = setting(
        "sample", f"{', '.join(DATA_SETS)} (sample is synthetic) or a folder (LABEL/*.wav or "
        "LABEL_SPEAKER_INDEX.wav)", check=DataSource(DATA_SETS), group="data")
    seed: int = split_seed_setting()


@dataclasses.dataclass(frozen=True)
class SpeechTrain(TrainConfig, DataSettings, MelBandSettings):
    task: str = setting("words", "words: recognise one spoken word; transcribe: train the CTC "
                        "transcriber instead (gru-suite train transcriber, see its --help)",
                        choices=("words", "transcribe"), group="data")
    epochs: int = epochs_setting(60)
    batch_size: int = batch_size_setting(32)
    units: int = units_setting(64)
    learning_rate: float = setting(2e-3, "peak of the cosine-decaying Adam learning rate",
                                   check=positive(10.0), group="model")
    test_speeds: tuple[float, ...] = setting(
        (1.0,), "run the model on each clip played at these speeds and average (test accuracy and "
        "the export), e.g. 0.85,0.9,1,1.1,1.15", check=SPEEDS,
        metavar="S1,S2,...", group="model")

    def check(self) -> None:
        super().check()
        if self.limit is not None and self.limit < 2:
            raise ConfigError(["limit"], f"must be at least 2 clips, got {self.limit}")


@dataclasses.dataclass(frozen=True)
class SpeechEvaluate(ExportConfig, DataSettings):
    output: Path = setting(Path("speech_confusion.png"), "confusion-matrix PNG")


@dataclasses.dataclass(frozen=True)
class SpeechPredict(ExportConfig):
    files: tuple[Path, ...] = setting((), "audio files, any rate and channel count", positional=True,
                                      nargs="+", metavar="FILE")


DEMO_WORDS = ("yes", "seven", "stop")


class SpeechApp(App):
    """Recognises a spoken word in raw audio (in-graph log-mel features, a BiGRU)."""

    name = "speech"
    help = {
        "train": "train a spoken-word recognizer on raw audio",
        "evaluate": "accuracy, per-word accuracy and a confusion matrix of a speech export",
        "predict": "recognize the spoken word in audio files",
    }
    Train = SpeechTrain
    Evaluate = SpeechEvaluate
    Predict = SpeechPredict
    serving_inputs = ("waveform",)
    tasks = {"transcribe": "transcriber"}
    smoke_args = ("--epochs", "1", "--limit", "60", "--units", "8")
    example_inputs = (str(SAMPLE_DIR / "yes" / "yes_00.flac"),)
    quick_args = ("--epochs", "25")

    def load_data(self, config: DataSettings) -> Splits:
        data = load_data(config.data, limit=getattr(config, "limit", None), seed=config.seed)
        if not len(data.test):
            raise InputError(f"{config.data}: the data set has no test clips.")
        return Splits(data.name, data, data.validation, data.test)

    def train(self, config: SpeechTrain, data: Splits, fitting: Fitting) -> Trained:
        speech: SpeechData = data.train
        model = train_speech_model(
            speech, cell=config.cell, units=config.units, epochs=config.epochs,
            batch_size=config.batch_size, learning_rate=config.learning_rate,
            min_frequency=config.min_frequency, max_frequency=config.max_frequency,
            seed=config.seed, verbose=config.verbose, strategy=fitting.strategy,
            backup_dir=fitting.backup_dir, checkpoint_every=fitting.checkpoint_every,
            fresh=fitting.fresh,
        )
        server = SpeechServer(model, speech.labels, config.test_speeds)
        serving = Serving({"serving_default": server.serve}, [model, server],
                          metadata={"labels": list(speech.labels), "sample_rate": SAMPLE_RATE,
                                    "test_speeds": list(config.test_speeds)})
        sizes = f"{len(speech.train)}/{len(speech.validation)}/{len(speech.test)}"
        return Trained(model, serving, config.epochs, {
            "clips (train/validation/test)": sizes,
            "labels": len(speech.labels),
            "test speeds": ",".join(f"{speed:g}" for speed in config.test_speeds),
        })

    def evaluate(self, export: Export, data: Splits, config: SpeechEvaluate,
                 output_dir: Path | None) -> Evaluation:
        """Accuracy, per-word accuracy and the confusion matrix on `data.test`."""
        labels = list(data.train.labels)
        exported = export.metadata.get("labels", labels)
        if list(exported) != labels:
            raise InputError(
                f"{data.name}: its words ({', '.join(labels)}) are not the export's "
                f"({', '.join(exported)})."
            )
        test = data.test
        probabilities = served_probabilities(export.signature(), test.waveforms)
        predicted = np.argmax(probabilities, axis=-1)
        accuracy = float(np.mean(predicted == test.labels))
        per_word = {
            word: float(np.mean(predicted[test.labels == index] == index))
            for index, word in enumerate(labels) if np.any(test.labels == index)
        }
        matrix_path = (output_dir / "confusion_matrix.png") if output_dir is not None else config.output
        save_confusion_matrix(confusion_matrix(test.labels, predicted, len(labels)), labels, matrix_path,
                              f"{data.name}: test accuracy {accuracy:.3f}")
        worst = min(per_word, key=per_word.get)
        return Evaluation(
            "test accuracy", accuracy,
            {"per-word accuracy": {word: round(value, 4) for word, value in per_word.items()},
             "confusion matrix": str(matrix_path)},
            summary=f"test accuracy {accuracy:.4f} on {len(test)} clips of {data.name} "
            f"(lowest: {worst} {per_word[worst]:.3f}); confusion matrix in {matrix_path}",
        )

    def predict(self, export: Export, config: SpeechPredict) -> list[dict]:
        """Prints one line per file: its label and probability, or why it was skipped.

        A bad file is reported and skipped; the command fails only if every file is bad.
        """
        serve = export.signature()
        results = []
        for path in config.files:
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

    def serving_example(self, export: Export) -> dict[str, list[float]]:
        return {"waveform": load_audio(self.example_inputs[0]).tolist()}

    def page(self, page) -> None:
        import gradio as gr

        audio = gr.Audio(sources=["upload", "microphone"], type="filepath", label="A spoken word (about a second)")
        button = gr.Button("Recognize", variant="primary")
        words = gr.Label(label="Word", num_top_classes=5)

        def recognize(path: str | None):
            if not path:
                raise InputError("Upload an audio file or record one first.")
            export = page.export()
            waveform = load_audio(path)
            probabilities = served_probabilities(export.signature(), waveform[np.newaxis, :])[0]
            labels = export.metadata.get("labels") or [str(i) for i in range(len(probabilities))]
            return {label: float(p) for label, p in zip(labels, probabilities)}

        button.click(page.handler(recognize), audio, words)

    def demo(self, export: Export) -> str:
        serve = export.signature()
        said = []
        for word in DEMO_WORDS:
            waveform = load_audio(SAMPLE_DIR / word / f"{word}_00.flac")
            label = serve(waveform=tf.constant(waveform[np.newaxis, :]))["label"].numpy()[0]
            said.append(f"{word} -> {label.decode('utf-8')}")
        return "; ".join(said)


register_app(SpeechApp())
# The transcriber, `--task transcribe` of this app, registers itself on import.
importlib.import_module("apps.speech.transcription")
