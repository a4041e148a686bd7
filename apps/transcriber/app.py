"""The transcriber app: `gru-suite train|evaluate|predict transcriber` and `gru-suite transcribe`.

`gru-suite train speech --task transcribe` and `evaluate|predict speech`
with a transcriber export come here too (its `Task`, see `apps.registry`). Its
exports go to `saved_models/transcriber/<version>/` (TensorFlow Serving
serves one model per folder): `serving_default` takes `waveform` (float32
`[batch, samples]`, 16 kHz mono, rows zero-padded to the longest) and returns
`transcript` (string `[batch]`) and `frames` (the output frames each row
filled, which bound its transcript's length); `greedy` and `beam` decode the
one way or the other.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np

from apps.common.app import App, Evaluation, Export, Fitting, Serving, Trained
from apps.common.audio import SAMPLE_RATE, SILENCE_PEAK, load_audio, read_audio_files
from apps.common.config import arguments_configurer, from_arguments
from apps.common.errors import InputError
from apps.common.export import DEFAULT_ROOT, load_extra_model, read_metadata, save_extra_model, version_folder
from apps.common.running import load_export, register_app
from apps.common.speech_features import FRONT_END_IN_TENSORFLOW
from apps.registry import Command, Task, register
from apps.transcriber.data import TranscribedSplit, TranscriptionData
from apps.transcriber.datasets import load_transcription_data
from apps.transcriber.labels import LABEL_SETS, LabelSet, label_set_for
from apps.transcriber.model import OUTPUT_FRAME_SECONDS
from apps.transcriber.page import transcriber_tab
from apps.transcriber.serving import (
    decoded_file_signature,
    error_rates,
    stream_files,
    streamed_file_signatures,
    transcribe_batches,
    transcriber_server,
)
from apps.transcriber.settings import (
    MAX_SECONDS,
    TranscriberEvaluate,
    TranscriberPredict,
    TranscriberTrain,
    TranscriptionSettings,
)
from apps.transcriber.training import train_transcriber

EXAMPLE = Path(__file__).parent / "examples" / "four_two_seven.flac"


class TranscriberApp(App[TranscriptionData, TranscriptionData]):
    """Transcribes utterances of any length (in-graph MFCCs, stacked BiGRU, CTC)."""

    name = "transcriber"
    help = {
        "train": "train a transcriber (BiGRU, CTC) on clips with transcripts and export it",
        "evaluate": "score a transcriber export: word and character error rates",
        "predict": "run a transcriber export on audio files: transcripts (as gru-suite transcribe)",
    }
    Train = TranscriberTrain
    Evaluate = TranscriberEvaluate
    Predict = TranscriberPredict
    serving_inputs = ("waveform",)
    tensorflow_only = FRONT_END_IN_TENSORFLOW
    task = Task("speech", "transcribe", "transcribe an utterance with the CTC transcriber "
                "(gru-suite VERB transcriber; see its --help)")
    smoke_args = ("--data", "digits:60", "--epochs", "1", "--units", "8", "--layers", "1",
                  "--conv-filters", "8", "--batch-size", "16")
    # One layer of 96 trains in half the time of two of 64 (54 s against 106 s;
    # test WER 0.8% and 2.5% in two runs against 1.7%), which keeps
    # `reproduce --quick` near 5 minutes.
    quick_args = ("--data", "digits:600", "--epochs", "16", "--units", "96", "--layers", "1",
                  "--conv-filters", "64", "--learning-rate", "5e-3")
    example_inputs = (str(EXAMPLE),)

    def load_data(self, config: TranscriptionSettings) -> TranscriptionData:
        return load_transcription_data(config.data, limit=getattr(config, "limit", None), seed=config.seed)

    def evaluation_data(self, config: TranscriberEvaluate) -> TranscriptionData:
        """`config.data`, or else the data set the export was trained on (its metadata)."""
        if config.data is None:
            model = Path(config.model) if config.model is not None else DEFAULT_ROOT / self.name
            if model.is_file():  # a LiteRT or ONNX file, in its export's version folder
                model = model.parent
            try:
                trained_on = read_metadata(version_folder(model)).get("data", TranscriptionSettings.data)
            except InputError:
                trained_on = TranscriptionSettings.data  # `evaluate` itself reports what is wrong with the folder
            config = dataclasses.replace(config, data=trained_on)
        return self.load_data(config)

    def train(self, config: TranscriberTrain, speech: TranscriptionData, fitting: Fitting) -> Trained:
        try:
            labels = label_set_for(speech.train.transcripts, config.labels)
        except ValueError as error:
            raise InputError(f"--labels {config.labels}: {error} (use --labels characters).") from None
        acoustic = train_transcriber(speech, labels, config, fitting)
        server = transcriber_server(acoustic, labels, config.decoding, config.beam_width, config.streaming)
        serving = Serving(
            server.endpoints(),
            [acoustic, server],
            metadata={"data": config.data, "sample_rate": SAMPLE_RATE, "labels": labels.name, "decoding": config.decoding,
                      "beam_width": config.beam_width, "max_seconds": MAX_SECONDS,
                      "frame_seconds": OUTPUT_FRAME_SECONDS, "streaming": config.streaming},
            extras=lambda directory: save_extra_model(acoustic, directory),
        )
        sizes = f"{len(speech.train)}/{len(speech.validation)}/{len(speech.test)}"
        return Trained(acoustic, serving, config.epochs, {"utterances (train/validation/test)": sizes,
                                                          "labels": labels.name, "decoding": config.decoding})

    def portable_serving(self, export: Export) -> Serving:
        """The acoustic model's per-frame log-probabilities, rebuilt from the export's Keras model:
        what a LiteRT or ONNX file serves (`from_file` decodes them)."""
        metadata = export.metadata
        server = transcriber_server(load_extra_model(export.path), _labels_of(export), metadata["decoding"],
                                    int(metadata["beam_width"]), bool(metadata.get("streaming")))
        return Serving(server.file_endpoints(), [server.acoustic, server], metadata)

    def from_file(self, export: Export) -> Export:
        """A file's log-probabilities decoded in this process with the SavedModel's CTC decoders, so
        it serves `serving_default`, `greedy` and `beam` as the SavedModel does."""
        labels, width, run = _labels_of(export), int(export.metadata["beam_width"]), export.signature()
        signatures = {name: decoded_file_signature(run, labels, decoding, width)
                      for name, decoding in (("serving_default", export.metadata["decoding"]),
                                             ("greedy", "greedy"), ("beam", "beam"))}
        if "stream" in export.signatures:
            signatures.update(streamed_file_signatures(export.signature("stream"), export.signature("initial_state"),
                                                       labels))
        return dataclasses.replace(export, signatures=signatures)

    def evaluate(self, export: Export, data: TranscriptionData, config: TranscriberEvaluate,
                 output_dir: Path | None) -> Evaluation:
        """Word and character error rates on `data.test`, pooled over its utterances (jiwer)."""
        test: TranscribedSplit = data.test
        name = config.decoding or "serving_default"
        hypotheses = transcribe_batches(export.signature(name), test.waveforms)
        wer, cer = error_rates(test.transcripts, hypotheses)
        examples = [f"{reference!r} -> {hypothesis!r}"
                    for reference, hypothesis in list(zip(test.transcripts, hypotheses))[:3]]
        decoding = config.decoding or export.metadata.get("decoding", "serving_default")
        return Evaluation(
            "test WER", wer, {"test CER": cer, "decoding": decoding, "examples": examples},
            summary=f"WER {wer:.4f}, CER {cer:.4f} on {len(test)} test utterances of {data.name} "
            f"({decoding} decoding); e.g. {examples[0]}",
        )

    def predict(self, export: Export, config: TranscriberPredict) -> list[dict]:
        """Prints one line per file: its transcript, or why it was skipped.

        Bad files (unreadable, empty, longer than `MAX_SECONDS`) are reported
        and skipped, the rest transcribed together; the command fails only if
        every file is bad. With `--stream`: `stream_files`.
        """
        if config.stream:
            return stream_files(export, config.files)
        limit = float(export.metadata.get("max_seconds", MAX_SECONDS))

        def check_length(path: Path, waveform: np.ndarray) -> None:
            seconds = waveform.size / SAMPLE_RATE
            if seconds > limit:
                raise InputError(f"{path}: {seconds:.1f} s long; this transcriber takes files of at "
                                 f"most {limit:g} s (split it at its pauses first).")

        results, readable = read_audio_files(config.files, check_length)
        transcripts = transcribe_batches(export.signature(), list(readable.values()))
        for (index, waveform), transcript in zip(readable.items(), transcripts):
            results[index]["transcript"] = transcript
            note = " (silent input)" if np.abs(waveform).max() < SILENCE_PEAK else ""
            print(f"{config.files[index]}: {transcript!r}{note}")
        return results

    def serving_example(self, export: Export) -> dict[str, list[float]]:
        return {"waveform": load_audio(EXAMPLE).tolist()}

    def page(self, page) -> None:
        transcriber_tab(page)

    def demo(self, export: Export) -> str:
        said = transcribe_batches(export.signature(), [load_audio(EXAMPLE)])[0]
        return f"'four two seven' (espeak-ng) -> {said!r}"


def _run_transcribe(args) -> list[dict]:
    app = TRANSCRIBER
    config = from_arguments(TranscriberPredict, args)
    return app.predict(load_export(app, config.model), config)


TRANSCRIBER = register_app(TranscriberApp())
register(Command("transcribe", None, "transcribe audio files with a transcriber export "
                 "(default saved_models/transcriber)", arguments_configurer(TranscriberPredict),
                 _run_transcribe))


def _labels_of(export: Export) -> LabelSet:
    """The label set an export was trained with (its metadata names it)."""
    name = export.metadata.get("labels")
    by_name = {labels.name: labels for labels in LABEL_SETS.values()}
    if name not in by_name:
        raise InputError(f"{export.path}: the export names no known label set ({name!r}; "
                         f"known: {', '.join(sorted(by_name))}).")
    return by_name[name]
