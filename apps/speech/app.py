"""The speech app: `gru-suite train|evaluate|predict speech` (spoken words)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import tensorflow as tf

from apps.common.app import App, Evaluation, Export, Fitting, Serving, Trained
from apps.common.audio import CLIP_SAMPLES, SAMPLE_RATE, SILENCE_PEAK, load_audio, read_audio_files
from apps.common.errors import InputError
from apps.common.export import load_extra_model, save_extra_model
from apps.common.figures import confusion_matrix, save_confusion_matrix
from apps.common.running import register_app
from apps.common.speech_features import FRONT_END_IN_TENSORFLOW, waveform_checked
from apps.registry import Task
from apps.speech.data import SAMPLE_DIR, SpeechData, load_data
from apps.speech.page import speech_tab
from apps.speech.serving import served_probabilities, speech_server
from apps.speech.settings import DataSettings, SpeechEvaluate, SpeechPredict, SpeechTrain
from apps.speech.training import train_speech_model

DEMO_WORDS = ("yes", "seven", "stop")


class SpeechApp(App[SpeechData, SpeechData]):
    """Recognises a spoken word in raw audio (in-graph log-mel features, a BiGRU)."""

    name = "speech"
    help = {
        "train": "train a spoken-word recognizer (BiGRU) on labelled clips and export it",
        "evaluate": "score a speech export: accuracy, per-word accuracy, confusion matrix",
        "predict": "run a speech export on audio files: word, probability",
    }
    Train = SpeechTrain
    Evaluate = SpeechEvaluate
    Predict = SpeechPredict
    serving_inputs = ("waveform",)
    tensorflow_only = FRONT_END_IN_TENSORFLOW
    task = Task("speech", "words", "recognise one spoken word")
    smoke_args = ("--epochs", "1", "--limit", "60", "--units", "8")
    example_inputs = (str(SAMPLE_DIR / "yes" / "yes_00.flac"),)
    quick_args = ("--epochs", "25")

    def load_data(self, config: DataSettings) -> SpeechData:
        data = load_data(config.data, limit=getattr(config, "limit", None), seed=config.seed)
        if not len(data.test):
            raise InputError(f"{config.data}: the data set has no test clips.")
        return data

    def train(self, config: SpeechTrain, speech: SpeechData, fitting: Fitting) -> Trained:
        model = train_speech_model(speech, config, fitting)
        server = speech_server(model, speech.labels, config.test_speeds, config.streaming)
        serving = Serving(server.endpoints(), [model, server],
                          metadata={"labels": list(speech.labels), "sample_rate": SAMPLE_RATE,
                                    "test_speeds": list(config.test_speeds), "streaming": config.streaming},
                          extras=lambda directory: save_extra_model(model, directory))
        sizes = f"{len(speech.train)}/{len(speech.validation)}/{len(speech.test)}"
        return Trained(model, serving, config.epochs, {
            "clips (train/validation/test)": sizes,
            "labels": len(speech.labels),
            "test speeds": ",".join(f"{speed:g}" for speed in config.test_speeds),
        })

    def portable_serving(self, export: Export) -> Serving:
        """The export's signatures rebuilt from its Keras model and metadata (the same graphs)."""
        model = load_extra_model(export.path)
        metadata = export.metadata
        server = speech_server(model, list(metadata["labels"]), tuple(metadata["test_speeds"]),
                               bool(metadata.get("streaming")))
        return Serving(server.endpoints(), [model, server], metadata)

    def from_file(self, export: Export) -> Export:
        """The file's signatures behind the waveform checks the SavedModel makes in-graph."""
        inputs = {"serving_default": ("waveform", False), "stream": ("waveform_chunk", True)}
        return dataclasses.replace(export, signatures={
            name: waveform_checked(function, *inputs[name]) if name in inputs else function
            for name, function in export.signatures.items()})

    def evaluate(self, export: Export, data: SpeechData, config: SpeechEvaluate,
                 output_dir: Path | None) -> Evaluation:
        """Accuracy, per-word accuracy and the confusion matrix on `data.test`."""
        labels = list(data.labels)
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
        results, readable = read_audio_files(config.files)
        for index, waveform in readable.items():
            outputs = serve(waveform=tf.constant(waveform[np.newaxis, :]))
            probabilities = outputs["probabilities"].numpy()[0]
            label = outputs["label"].numpy()[0].decode("utf-8")
            notes = []
            if np.abs(waveform).max() < SILENCE_PEAK:
                notes.append("silent input")
            if waveform.size > CLIP_SAMPLES:
                notes.append(f"{waveform.size / SAMPLE_RATE:.1f} s long: used its loudest second")
            note = f" ({'; '.join(notes)})" if notes else ""
            print(f"{config.files[index]}: {label} (p={probabilities.max():.3f}){note}")
            results[index].update(label=label, probability=float(probabilities.max()), probabilities=probabilities)
        return results

    def serving_example(self, export: Export) -> dict[str, list[float]]:
        return {"waveform": load_audio(self.example_inputs[0]).tolist()}

    def page(self, page) -> None:
        speech_tab(page)

    def demo(self, export: Export) -> str:
        serve = export.signature()
        said = []
        for word in DEMO_WORDS:
            waveform = load_audio(SAMPLE_DIR / word / f"{word}_00.flac")
            label = serve(waveform=tf.constant(waveform[np.newaxis, :]))["label"].numpy()[0]
            said.append(f"{word} -> {label.decode('utf-8')}")
        return "; ".join(said)


register_app(SpeechApp())
