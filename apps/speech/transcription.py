"""The transcriber app: `gru-suite train|evaluate|predict transcriber` and `gru-suite transcribe`.

`gru-suite train speech --task transcribe` and `evaluate|predict speech`
with a transcriber export come here too (see `SpeechApp.tasks`). Its
exports go to `saved_models/transcriber/<version>/` (TensorFlow Serving
serves one model per folder): `serving_default` takes `waveform` (float32
`[batch, samples]`, 16 kHz mono, rows zero-padded to the longest) and returns
`transcript` (string `[batch]`) and `frames` (the output frames each row
filled, which bound its transcript's length); `greedy` and `beam` decode the
one way or the other.
"""

from __future__ import annotations

import dataclasses
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
    load_export,
    register_app,
    split_seed_setting,
    units_setting,
)
from apps.common.config import (
    Config,
    DataSource,
    arguments_configurer,
    at_least,
    fraction,
    from_arguments,
    positive,
    setting,
)
from apps.common.errors import InputError
from apps.common.export import DEFAULT_ROOT, read_metadata, version_folder
from apps.registry import Command, register
from apps.speech.ctc import (
    DECODINGS,
    LABEL_SETS,
    OUTPUT_FRAME_SECONDS,
    CTCModel,
    LabelSet,
    TranscriberServer,
    build_acoustic_model,
    label_set_for,
    output_frames,
)
from apps.speech.data import SAMPLE_RATE, TranscribedSplit, TranscriptionData, load_audio
from apps.speech.model import FEATURES, MelBandSettings, mix_noise
from apps.speech.transcription_sets import TRANSCRIPTION_DATA_SETS, load_transcription_data

# The longest file `transcribe` takes; the recurrent layers were trained on utterances of seconds.
MAX_SECONDS = 30.0
SILENCE_PEAK = 1e-4
AUGMENTATION_SPEEDS = (0.9, 1.1)  # the speed perturbation of training utterances
EXAMPLE = Path(__file__).parent / "examples" / "four_two_seven.flac"


def augment_utterance(
    waveform: tf.Tensor,
    noise: tf.Tensor,
    *,
    speed_range: tuple[float, float] = AUGMENTATION_SPEEDS,
    noise_probability: float = 0.8,
    snr_db_range: tuple[float, float] = (5.0, 30.0),
) -> tf.Tensor:
    """One training utterance (1-D, any length) -> a perturbed copy (tf.data map function).

    Speed perturbation (linear resampling by a random factor: tempo and pitch
    together) and, with `noise_probability`, a random stretch of `noise`
    (repeated as needed) mixed in at a random signal-to-noise ratio.
    """
    length = tf.cast(tf.cast(tf.shape(waveform)[0], tf.float32) / tf.random.uniform([], *speed_range), tf.int32)
    waveform = tf.image.resize(waveform[tf.newaxis, tf.newaxis, :, tf.newaxis], [1, length])[0, 0, :, 0]
    noise_length = tf.shape(noise)[0]
    repeated = tf.tile(noise, [length // noise_length + 2])
    start = tf.random.uniform([], 0, noise_length, tf.int32)
    return mix_noise(waveform, repeated[start : start + length], noise_probability, snr_db_range)


def utterance_dataset(
    split: TranscribedSplit, labels: LabelSet, batch_size: int, *, noise: np.ndarray | None = None, seed: int = 0,
) -> tf.data.Dataset:
    """`({"waveform", "samples"}, labels)` batches of utterances of similar length.

    With `noise`, a training set: shuffled every epoch and augmented
    (`augment_utterance`). Utterances are bucketed by length so that little
    of a batch is padding; label ids are padded with -1.
    """
    ids = labels.encode(split.transcripts)

    def examples():
        for waveform, label in zip(split.waveforms, ids):
            yield waveform, np.asarray(label, np.int32)

    dataset = tf.data.Dataset.from_generator(examples, output_signature=(
        tf.TensorSpec([None], tf.float32), tf.TensorSpec([None], tf.int32)))
    dataset = dataset.cache()
    if noise is not None:
        noise_tensor = tf.constant(noise)
        dataset = dataset.shuffle(len(split), seed=seed, reshuffle_each_iteration=True).map(
            lambda waveform, label: (augment_utterance(waveform, noise_tensor), label),
            num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.map(lambda waveform, label: ({"waveform": waveform, "samples": tf.shape(waveform)[0]}, label))
    lengths = np.array([len(waveform) for waveform in split.waveforms])
    boundaries = sorted({int(q) for q in np.quantile(lengths, [0.25, 0.5, 0.75])} - {0})
    return dataset.bucket_by_sequence_length(
        lambda inputs, label: inputs["samples"], boundaries, [batch_size] * (len(boundaries) + 1),
        padding_values=({"waveform": 0.0, "samples": 0}, -1),
    ).prefetch(tf.data.AUTOTUNE)


def frames_needed(ids: list[int]) -> int:
    """Output frames CTC needs to emit label `ids`: one per label, and a blank between two equal ones."""
    return len(ids) + sum(first == second for first, second in zip(ids, ids[1:]))


def fitting_utterances(split: TranscribedSplit, labels: LabelSet, speed_up: float = 1.0) -> TranscribedSplit:
    """The utterances of `split` long enough for their transcripts, even sped up by `speed_up`.

    A transcript that needs more output frames than its audio gives has
    zero CTC probability: its loss is infinite and one such utterance turns
    the whole batch's gradients into NaN.
    """
    frames = output_frames([int(len(waveform) / speed_up) for waveform in split.waveforms]).numpy()
    needed = [frames_needed(ids) for ids in labels.encode(split.transcripts)]
    return split.subset(index for index in range(len(split)) if needed[index] <= frames[index])


def train_transcriber(
    data: TranscriptionData,
    labels: LabelSet,
    fitting: Fitting,
    *,
    cell: str = "gru",
    units: int = 128,
    recurrent_layers: int = 3,
    conv_filters: int = 128,
    dropout: float = 0.1,
    min_frequency: float = FEATURES.lower_hertz,
    max_frequency: float = FEATURES.upper_hertz,
    epochs: int = 40,
    batch_size: int = 32,
    learning_rate: float = 1e-3,
    seed: int = 0,
) -> keras.Model:
    """Builds `build_acoustic_model` for `labels` in `fitting`'s scope and trains it with CTC on `data.train`.

    Adam with a cosine-decaying learning rate and gradients clipped to norm
    5 (CTC's early gradients are large); validates on `data.validation` if
    it has utterances. Utterances too short for their transcripts
    (`fitting_utterances`) are left out, with a message. Returns the acoustic model.
    """
    frame_ms = 1000 * OUTPUT_FRAME_SECONDS
    kept = {}
    for name, split, speed_up in (("training", data.train, AUGMENTATION_SPEEDS[1]),
                                  ("validation", data.validation, 1.0)):
        kept[name] = fitting_utterances(split, labels, speed_up)
        if len(kept[name]) < len(split):
            print(f"{data.name}: left out {len(split) - len(kept[name])} of the {len(split)} {name} "
                  f"utterances, too short for their transcripts (CTC needs {frame_ms:g} ms of audio "
                  "per label)", file=sys.stderr)
    if not len(kept["training"]):
        raise InputError(f"{data.name}: no training utterance is long enough for its transcript "
                         f"(CTC needs {frame_ms:g} ms of audio per label).")
    train = utterance_dataset(kept["training"], labels, batch_size, noise=data.noise, seed=seed)
    steps = epochs * int(np.ceil(len(kept["training"]) / batch_size))
    with fitting.scope():
        acoustic = build_acoustic_model(labels.num_classes, cell=cell, units=units, recurrent_layers=recurrent_layers,
                                        conv_filters=conv_filters, dropout=dropout,
                                        min_frequency=min_frequency, max_frequency=max_frequency, seed=seed)
        model = CTCModel(acoustic, name="ctc")
        schedule = keras.optimizers.schedules.CosineDecay(learning_rate, max(steps, 1), alpha=0.05)
        model.compile(optimizer=keras.optimizers.Adam(schedule, clipnorm=5.0))
    validation = utterance_dataset(kept["validation"], labels, batch_size) if len(kept["validation"]) else None
    fitting.fit(model, train, epochs=epochs, validation_data=validation)
    return acoustic


def transcribe_batches(serve, waveforms: list[np.ndarray], batch_size: int = 32) -> list[str]:
    """What a transcriber signature says to each waveform, `batch_size` of similar length at a time."""
    order = np.argsort([len(waveform) for waveform in waveforms])
    transcripts = [""] * len(waveforms)
    for start in range(0, len(order), batch_size):
        rows = order[start:start + batch_size]
        batch = np.zeros((len(rows), max(len(waveforms[i]) for i in rows)), np.float32)
        for row, index in enumerate(rows):
            batch[row, :len(waveforms[index])] = waveforms[index]
        outputs = serve(waveform=tf.constant(batch))["transcript"].numpy()
        for index, text in zip(rows, outputs):
            transcripts[index] = text.decode("utf-8")
    return transcripts


def error_rates(references: list[str], hypotheses: list[str]) -> tuple[float, float]:
    """Word and character error rates (jiwer) of `hypotheses` against `references`, pooled."""
    import jiwer

    return (jiwer.wer(references, hypotheses), jiwer.cer(references, hypotheses))


DATA_HELP = (f"{', '.join(TRANSCRIPTION_DATA_SETS)} (digits: joined from the shipped clips; "
             "digits-espeak: made with espeak-ng on first use; NAME:N for N strings), or a folder "
             "of audio with a .txt beside each clip or a TSV/CSV manifest of path,text")
TRANSCRIPTION_DATA = DataSource(("digits", "digits-espeak", "ljspeech"),
                                prefixes=("librispeech", "digits", "digits-espeak"))


@dataclasses.dataclass(frozen=True)
class TranscriptionSettings(Config):
    data: str = setting("digits", DATA_HELP, check=TRANSCRIPTION_DATA, group="data")
    seed: int = split_seed_setting()


@dataclasses.dataclass(frozen=True)
class TranscriberTrain(TrainConfig, TranscriptionSettings, MelBandSettings):
    epochs: int = epochs_setting(40)
    batch_size: int = batch_size_setting(32)
    units: int = units_setting(128)
    layers: int = setting(3, "stacked bidirectional recurrent layers", check=at_least(1, maximum=12),
                          group="model")
    conv_filters: int = setting(128, "filters of each of the two convolutions before them",
                                check=at_least(1, maximum=4096), group="model")
    dropout: float = setting(0.1, "dropout after each recurrent layer", check=fraction(), group="model")
    learning_rate: float = setting(1e-3, "peak of the cosine-decaying Adam learning rate",
                                   check=positive(10.0), group="model")
    labels: str = setting("auto", "what the frames choose between: characters, or digits (the ten "
                          "digit words); auto: digits when every transcript is digit words",
                          choices=("auto", *LABEL_SETS), group="model")
    decoding: str = setting("beam", "how serving_default decodes (the export has both as the "
                            "greedy and beam signatures)", choices=DECODINGS, group="model")
    beam_width: int = setting(16, "prefixes kept by beam search", check=at_least(1, maximum=1024),
                              group="model")


@dataclasses.dataclass(frozen=True)
class TranscriberEvaluate(ExportConfig, TranscriptionSettings):
    data: str | None = setting(None, DATA_HELP + "; default: the data the export was trained on",
                               check=TRANSCRIPTION_DATA, group="data")
    decoding: str | None = setting(None, "evaluate this signature instead of serving_default",
                                   choices=DECODINGS)


@dataclasses.dataclass(frozen=True)
class TranscriberPredict(ExportConfig):
    files: tuple[Path, ...] = setting((), "audio files, any rate and channel count, up to "
                                      f"{MAX_SECONDS:g} s each", positional=True, nargs="+", metavar="FILE")


class TranscriberApp(App):
    """Transcribes utterances of any length (in-graph MFCCs, stacked BiGRU, CTC)."""

    name = "transcriber"
    help = {
        "train": "train a speech transcriber (CTC) on raw audio with transcripts",
        "evaluate": "word and character error rates of a transcriber export",
        "predict": "transcribe audio files (the same as gru-suite transcribe)",
    }
    Train = TranscriberTrain
    Evaluate = TranscriberEvaluate
    Predict = TranscriberPredict
    serving_inputs = ("waveform",)
    smoke_args = ("--data", "digits:60", "--epochs", "1", "--units", "8", "--layers", "1",
                  "--conv-filters", "8", "--batch-size", "16")
    # One layer of 96 trains in half the time of two of 64 (54 s against 106 s;
    # test WER 0.8% and 2.5% in two runs against 1.7%), which keeps
    # `reproduce --quick` near 5 minutes.
    quick_args = ("--data", "digits:600", "--epochs", "16", "--units", "96", "--layers", "1",
                  "--conv-filters", "64", "--learning-rate", "5e-3")
    example_inputs = (str(EXAMPLE),)

    def load_data(self, config: TranscriptionSettings) -> Splits:
        data = load_transcription_data(config.data, limit=getattr(config, "limit", None), seed=config.seed)
        return Splits(data.name, data, data.validation, data.test)

    def evaluation_data(self, config: TranscriberEvaluate) -> Splits:
        """`config.data`, or else the data set the export was trained on (its metadata)."""
        if config.data is None:
            model = config.model if config.model is not None else DEFAULT_ROOT / self.name
            try:
                trained_on = read_metadata(version_folder(model)).get("data", "digits")
            except InputError:
                trained_on = "digits"  # `evaluate` itself reports what is wrong with the folder
            config = dataclasses.replace(config, data=trained_on)
        return self.load_data(config)

    def train(self, config: TranscriberTrain, data: Splits, fitting: Fitting) -> Trained:
        speech: TranscriptionData = data.train
        try:
            labels = label_set_for(speech.train.transcripts, config.labels)
        except ValueError as error:
            raise InputError(f"--labels {config.labels}: {error} (use --labels characters).") from None
        acoustic = train_transcriber(
            speech, labels, fitting, cell=config.cell, units=config.units, recurrent_layers=config.layers,
            conv_filters=config.conv_filters, dropout=config.dropout, min_frequency=config.min_frequency,
            max_frequency=config.max_frequency, epochs=config.epochs,
            batch_size=config.batch_size, learning_rate=config.learning_rate, seed=config.seed,
        )
        server = TranscriberServer(acoustic, labels, config.decoding, config.beam_width)
        serving = Serving(
            {"serving_default": server.serve, "greedy": server.greedy, "beam": server.beam},
            [acoustic, server],
            metadata={"data": config.data, "sample_rate": SAMPLE_RATE, "labels": labels.name, "decoding": config.decoding,
                      "beam_width": config.beam_width, "max_seconds": MAX_SECONDS,
                      "frame_seconds": OUTPUT_FRAME_SECONDS},
        )
        sizes = f"{len(speech.train)}/{len(speech.validation)}/{len(speech.test)}"
        return Trained(acoustic, serving, config.epochs, {"utterances (train/validation/test)": sizes,
                                                          "labels": labels.name, "decoding": config.decoding})

    def evaluate(self, export: Export, data: Splits, config: TranscriberEvaluate,
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
        every file is bad.
        """
        results: list[dict] = []
        readable: dict[int, np.ndarray] = {}
        for index, path in enumerate(config.files):
            try:
                waveform = load_audio(path)
                seconds = waveform.size / SAMPLE_RATE
                limit = float(export.metadata.get("max_seconds", MAX_SECONDS))
                if seconds > limit:
                    raise InputError(f"{path}: {seconds:.1f} s long; this transcriber takes files of at "
                                     f"most {limit:g} s (split it at its pauses first).")
            except InputError as error:
                print(f"skipped: {error}", file=sys.stderr)
                results.append({"file": str(path), "error": str(error)})
                continue
            readable[index] = waveform
            results.append({"file": str(path)})
        if not readable:
            raise InputError("no file could be transcribed: " + "; ".join(r["error"] for r in results))
        transcripts = transcribe_batches(export.signature(), list(readable.values()))
        for (index, waveform), transcript in zip(readable.items(), transcripts):
            results[index]["transcript"] = transcript
            note = " (silent input)" if np.abs(waveform).max() < SILENCE_PEAK else ""
            print(f"{config.files[index]}: {transcript!r}{note}")
        return results

    def serving_example(self, export: Export) -> dict[str, list[float]]:
        return {"waveform": load_audio(EXAMPLE).tolist()}

    def page(self, page) -> None:
        import gradio as gr

        audio = gr.Audio(sources=["upload", "microphone"], type="filepath",
                         label=f"Speech (up to {MAX_SECONDS:g} s)")
        button = gr.Button("Transcribe", variant="primary")
        transcript = gr.Textbox(label="Transcript", interactive=False)

        def transcribe(path: str | None) -> str:
            if not path:
                raise InputError("Upload an audio file or record one first.")
            return transcribe_batches(page.export().signature(), [load_audio(path)])[0]

        button.click(page.handler(transcribe), audio, transcript)

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
