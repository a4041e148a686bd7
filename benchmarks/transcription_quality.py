"""Word and character error rates of the transcriber on connected digit strings of real speech.

The strings are made from the Free Spoken Digit Dataset in
`<data-dir>/fsdd/recordings` (8 kHz WAV, `{digit}_{speaker}_{index}.wav`,
five speakers, indices 0-49) by the app's own recipe
(`apps.speech.digit_strings.make_digit_strings`): each is 3-7 recordings of
one speaker (seeded random digits and recordings), every recording
resampled to 16 kHz and trimmed of its leading and trailing silence, joined
by 50-300 ms pauses (and as much before and after), at a random peak level,
with synthetic noise mixed in at 20-35 dB SNR; the transcript is the digit
words ("three one four"), as the app's `digits` set writes them. Two
measurements:

1. index split: train on strings of recording indices 5-49 (all speakers),
   test on strings of indices 0-4;
2. leave one speaker out: for each speaker, train on strings of the other
   four (all indices), test on strings of that speaker; the mean over them.

    python benchmarks/transcription_quality.py --data-dir ../shared/datasets [--minutes 20]
        [--fold-minutes M] [--epochs 60] [--measure index|speakers|both] [--cell gru]
        [--synthetic 2000] [--train-strings 3000] [--test-strings 500]
        [--speakers george,jackson] [--word-model saved_models/speech/N] [--streaming]

Each training is `train_transcriber` (the app's own, through its `Fitting`)
on the FSDD strings plus `--synthetic N` strings of the app's `digits-espeak`
set (espeak-ng's voices; 0: none),
stopped at `--epochs` or after its minutes, whichever comes first (the
cosine learning rate decays over `--epochs`, so set it to about what fits).
Test WER and CER are printed for both the greedy and the beam signature of
`TranscriberServer`; `--word-model DIR` also scores a speech export (the word
recogniser) on the single recordings in the index split's test strings.
`--streaming` trains `train transcriber --streaming`'s causal model; its greedy
whole-clip transcript is what its `stream` signature ends at.

Targets (judged on beam decoding, the export's default): WER <= 3% on the
index split and <= 10% averaged over unseen speakers, each training within
20 minutes on the 2-core development machine.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import os
import re
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from apps.common.app import Fitting  # noqa: E402
from apps.common.audio import load_audio, SAMPLE_RATE, synthetic_noise_bed  # noqa: E402
from apps.common.cells import CELLS  # noqa: E402
from apps.common.export import load_exported  # noqa: E402
from apps.common.speech_features import FEATURES  # noqa: E402
from apps.common.training import Stopwatch, TimeBudget, set_seed  # noqa: E402
from apps.transcriber.data import DIGIT_WORDS, TranscribedSplit, TranscriptionData  # noqa: E402
from apps.transcriber.digit_strings import (  # noqa: E402
    DigitClip,
    load_espeak_digits,
    make_digit_strings,
    StringRecipe,
    trimmed,
)
from apps.transcriber.labels import LABEL_SETS, label_set_for  # noqa: E402
from apps.transcriber.serving import error_rates, transcribe_batches, transcriber_server  # noqa: E402
from apps.transcriber.settings import MAX_SECONDS, TranscriberTrain  # noqa: E402
from apps.transcriber.training import train_transcriber  # noqa: E402

TARGET_INDEX_WER = 0.03
TARGET_SPEAKER_WER = 0.10
TARGET_MINUTES = 20.0
FSDD_RECIPE = StringRecipe(pause_seconds=(0.05, 0.3), snr_db=(20.0, 35.0), digits=(3, 7))
FSDD_TRIM_DB = 30  # the recordings are clean: silence lies 30 dB below their peak
TEST_INDICES = range(5)
_NAME = re.compile(r"^(?P<digit>\d)_(?P<speaker>[a-z]+)_(?P<index>\d+)$")


@dataclass(frozen=True)
class Recording:
    """One FSDD file and what its name says."""

    path: Path
    digit: int
    speaker: str
    index: int


@dataclass
class Result:
    """One training and its test scores."""

    name: str
    train_strings: int  # of FSDD
    synthetic_strings: int
    test_strings: int
    minutes: float
    epochs: int
    stopped: bool  # by the time budget
    rates: dict[str, tuple[float, float]]  # decoding -> (WER, CER)
    examples: list[str]


def read_recordings(folder: Path) -> list[Recording]:
    """The FSDD recordings in `folder`, parsed from their names."""
    recordings = []
    for path in sorted(folder.glob("*.wav")):
        match = _NAME.match(path.stem)
        if match is None:
            raise SystemExit(f"{path}: expected a name like 7_jackson_12.wav.")
        recordings.append(Recording(path, int(match["digit"]), match["speaker"], int(match["index"])))
    if not recordings:
        raise SystemExit(f"{folder}: no .wav recordings.")
    return recordings


@functools.lru_cache(maxsize=None)
def digit_clip(recording: Recording) -> DigitClip:
    """`recording` at 16 kHz without its leading and trailing silence (decoded once)."""
    return DigitClip(recording.path.name, recording.speaker, recording.digit,
                     trimmed(load_audio(recording.path), FSDD_TRIM_DB))


def digit_strings(pool: list[Recording], count: int, seed: int) -> TranscribedSplit:
    """`count` strings of one speaker each from `pool`; `files` names their recordings, joined by +."""
    return make_digit_strings([digit_clip(r) for r in pool], count, np.random.default_rng(seed), FSDD_RECIPE)


def joined(*splits: TranscribedSplit) -> TranscribedSplit:
    """The utterances of `splits`, one after another."""
    return TranscribedSplit(
        [w for split in splits for w in split.waveforms],
        [t for split in splits for t in split.transcripts],
        [f for split in splits for f in split.files],
    )


def train_and_score(name: str, train: TranscribedSplit, synthetic: TranscribedSplit, test: TranscribedSplit,
                    minutes: float, args: argparse.Namespace) -> Result:
    """Trains a transcriber on `train` and `synthetic` for at most `minutes` (and `args.epochs`);
    scores it on `test`."""
    set_seed(args.seed)
    everything = joined(train, synthetic)
    data = TranscriptionData(name, everything, TranscribedSplit([], []), test, synthetic_noise_bed())
    labels = label_set_for(everything.transcripts, args.labels)
    with tempfile.TemporaryDirectory(prefix="transcription_quality_") as run_dir:
        config = TranscriberTrain(
            epochs=args.epochs, batch_size=args.batch_size, units=args.units, cell=args.cell, seed=args.seed,
            verbose=args.verbose, run_dir=Path(run_dir), fresh=True, layers=args.layers,
            conv_filters=args.conv_filters, dropout=args.dropout, min_frequency=args.min_frequency,
            max_frequency=args.max_frequency, learning_rate=args.learning_rate, streaming=args.streaming,
        )
        budget = TimeBudget(minutes)
        fitting = Fitting(config, Path(run_dir), callbacks=[budget])
        with Stopwatch() as watch:
            acoustic = train_transcriber(data, labels, config, fitting)
    server = transcriber_server(acoustic, labels, "beam", args.beam_width, args.streaming)
    said = {decoding: transcribe_batches(serve, test.waveforms, args.batch_size)
            for decoding, serve in (("greedy", server.greedy), ("beam", server.beam))}
    rates = {decoding: error_rates(test.transcripts, hypotheses) for decoding, hypotheses in said.items()}
    examples = [f"{reference!r} -> {hypothesis!r}" for reference, hypothesis in
                list(zip(test.transcripts, said["beam"]))[:3]]
    result = Result(name, len(train), len(synthetic), len(test), watch.seconds / 60,
                    len(fitting.history.history["loss"]), budget.stopped_early, rates, examples)
    print(f"{name}: WER greedy {rates['greedy'][0]:.4f} / beam {rates['beam'][0]:.4f}, CER greedy "
          f"{rates['greedy'][1]:.4f} / beam {rates['beam'][1]:.4f} on {len(test)} test strings; "
          f"{len(train)}+{len(synthetic)} train strings (FSDD+synthetic), {result.epochs} epoch(s) in "
          f"{result.minutes:.1f} min"
          f"{' (stopped by the time budget)' if result.stopped else ''}; e.g. {'; '.join(examples)}",
          flush=True)
    return result


def word_model_accuracy(model_dir: Path, test: TranscribedSplit,
                        recordings: list[Recording]) -> tuple[float, int]:
    """Accuracy of a speech export on the single recordings in `test`'s strings, and how many."""
    by_name = {recording.path.name: recording for recording in recordings}
    used = sorted({name for names in test.files for name in names.split("+")})
    serve = load_exported(model_dir).signatures["serving_default"]
    correct = 0
    for name in used:
        recording = by_name[name]
        # One clip per call: the recogniser centres or crops each clip, so padding would shift it.
        label = serve(waveform=tf.constant(load_audio(recording.path)[np.newaxis]))["label"].numpy()[0]
        correct += label.decode("utf-8") in (DIGIT_WORDS[recording.digit], str(recording.digit))
    return correct / len(used), len(used)


def verdict(wer: float, target: float, results: list[Result], budget: float) -> str:
    """Met when `wer` reaches `target` and every training took at most `TARGET_MINUTES`
    (or was stopped by a budget of at most that: the fit overshoots it by one batch)."""
    in_time = all(result.minutes <= TARGET_MINUTES or (result.stopped and budget <= TARGET_MINUTES)
                  for result in results)
    return "met" if wer <= target and in_time else "missed"


def summary_row(result: Result) -> str:
    """`result` as a row of the summary table."""
    greedy, beam = result.rates["greedy"], result.rates["beam"]
    return (f"| {result.name} | {result.train_strings}+{result.synthetic_strings}/{result.test_strings} | "
            f"{result.minutes:.1f} | "
            f"{result.epochs}{'*' if result.stopped else ''} | {greedy[0]:.2%} | {beam[0]:.2%} | "
            f"{greedy[1]:.2%} | {beam[1]:.2%} |")


def machine_line(when: str) -> str:
    """`when`, the date and time, and the load average (figures are quoted with the machine's load)."""
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    return f"{when} {datetime.datetime.now().isoformat(timespec='seconds')}; load average {load}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/datasets"),
                        help="folder holding fsdd/recordings")
    parser.add_argument("--measure", choices=("index", "speakers", "both"), default="both")
    parser.add_argument("--minutes", type=float, default=TARGET_MINUTES,
                        help=f"training budget of the index split, default {TARGET_MINUTES:g}")
    parser.add_argument("--fold-minutes", type=float, default=None,
                        help="training budget of each leave-one-speaker-out fold; default --minutes")
    parser.add_argument("--epochs", type=int, default=60,
                        help="upper bound on epochs, over which the learning rate decays; default 60")
    parser.add_argument("--train-strings", type=int, default=3000, help="FSDD train strings, default 3000")
    parser.add_argument("--test-strings", type=int, default=500, help="FSDD test strings, default 500")
    parser.add_argument("--synthetic", type=int, default=2000, metavar="N",
                        help="also train on N espeak-ng `digits-espeak` strings (made once, cached); 0: none; "
                             "default 2000")
    parser.add_argument("--speakers", type=lambda text: text.split(","), default=None,
                        metavar="S1,S2,...", help="the held-out speakers of the folds run; default all")
    parser.add_argument("--word-model", type=Path, default=None, metavar="DIR",
                        help="a speech export (saved_models/speech/N) to score on the index split's "
                             "test recordings")
    parser.add_argument("--streaming", action="store_true",
                        help="train transcriber --streaming's causal model (unidirectional GRUs)")
    parser.add_argument("--cell", choices=sorted(CELLS), default=TranscriberTrain.cell)
    parser.add_argument("--units", type=int, default=TranscriberTrain.units, help=f"default {TranscriberTrain.units}")
    parser.add_argument("--layers", type=int, default=TranscriberTrain.layers,
                        help=f"bidirectional recurrent layers, default {TranscriberTrain.layers}")
    parser.add_argument("--conv-filters", type=int, default=TranscriberTrain.conv_filters,
                        help=f"default {TranscriberTrain.conv_filters}")
    parser.add_argument("--dropout", type=float, default=TranscriberTrain.dropout, help=f"default {TranscriberTrain.dropout}")
    parser.add_argument("--learning-rate", type=float, default=TranscriberTrain.learning_rate,
                        help=f"peak, default {TranscriberTrain.learning_rate:g}")
    parser.add_argument("--batch-size", type=int, default=TranscriberTrain.batch_size,
                        help=f"default {TranscriberTrain.batch_size}")
    parser.add_argument("--min-frequency", type=float, default=FEATURES.lower_hertz, metavar="HZ",
                        help=f"bottom of the mel filter bank, default {FEATURES.lower_hertz:g}")
    parser.add_argument("--max-frequency", type=float, default=4000.0, metavar="HZ",
                        help="top of the mel filter bank, default 4000 (FSDD's bandwidth)")
    parser.add_argument("--labels", choices=("auto", *LABEL_SETS), default="auto",
                        help="what the frames choose between; auto (default): the digit words")
    parser.add_argument("--beam-width", type=int, default=TranscriberTrain.beam_width,
                        help=f"default {TranscriberTrain.beam_width}")
    parser.add_argument("--seed", type=int, default=0, help="strings, synthetic set and training; default 0")
    parser.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2))
    args = parser.parse_args()
    fold_minutes = args.fold_minutes if args.fold_minutes is not None else args.minutes

    recordings_dir = args.data_dir / "fsdd" / "recordings"
    if not recordings_dir.is_dir():
        raise SystemExit(f"{recordings_dir}: not found (pass --data-dir, the folder holding fsdd/).")
    print(machine_line("start"), flush=True)
    start = time.perf_counter()
    recordings = read_recordings(recordings_dir)
    speakers = sorted({recording.speaker for recording in recordings})
    held_out = args.speakers or speakers
    unknown = set(held_out) - set(speakers)
    if unknown:
        raise SystemExit(f"--speakers: no recordings of {', '.join(sorted(unknown))} (there are "
                         f"{', '.join(speakers)}).")
    synthetic = TranscribedSplit([], [])
    if args.synthetic:
        digits = load_espeak_digits(args.synthetic, seed=args.seed)
        synthetic = joined(digits.train, digits.validation, digits.test)
    print(f"{len(recordings)} FSDD recordings of {len(speakers)} speakers; {len(synthetic)} synthetic "
          f"strings; cell={args.cell} units={args.units} layers={args.layers} "
          f"conv_filters={args.conv_filters}; mel filters {args.min_frequency:g}-{args.max_frequency:g} Hz; "
          f"at most {args.epochs} epochs, {args.minutes:g} min (index) / {fold_minutes:g} min (folds)",
          flush=True)

    index_result, word_accuracy, fold_results = None, None, []
    made: list[TranscribedSplit] = []
    if args.measure in ("index", "both"):
        train = digit_strings([r for r in recordings if r.index not in TEST_INDICES], args.train_strings,
                              args.seed)
        test = digit_strings([r for r in recordings if r.index in TEST_INDICES], args.test_strings,
                             args.seed + 1)
        made += [train, test]
        index_result = train_and_score("index split (train 5-49, test 0-4)", train, synthetic, test,
                                       args.minutes, args)
        if args.word_model:
            word_accuracy = word_model_accuracy(args.word_model, test, recordings)
            print(f"word model {args.word_model}: accuracy {word_accuracy[0]:.4f} on the "
                  f"{word_accuracy[1]} single test recordings of those strings", flush=True)
    if args.measure in ("speakers", "both"):
        for number, speaker in enumerate(held_out):
            train = digit_strings([r for r in recordings if r.speaker != speaker], args.train_strings,
                                  args.seed + 2 + 2 * number)
            test = digit_strings([r for r in recordings if r.speaker == speaker], args.test_strings,
                                 args.seed + 3 + 2 * number)
            made += [train, test]
            fold_results.append(train_and_score(f"unseen speaker {speaker}", train, synthetic, test,
                                                fold_minutes, args))

    longest = max(len(waveform) for split in made for waveform in split.waveforms) / SAMPLE_RATE
    print(f"\n## Transcriber on FSDD digit strings ({args.cell}, {time.perf_counter() - start:.0f} s wall "
          f"in all; longest string {longest:.1f} s of the {MAX_SECONDS:g} s transcribe takes)\n")
    print("| measurement | train (FSDD+synthetic)/test strings | train min | epochs | WER greedy | WER beam "
          "| CER greedy | CER beam |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for result in ([index_result] if index_result else []) + fold_results:
        print(summary_row(result))
    if fold_results:
        mean = {decoding: np.mean([r.rates[decoding] for r in fold_results], axis=0)
                for decoding in ("greedy", "beam")}
        print(f"| mean of {len(fold_results)} unseen speaker(s) | | "
              f"{np.mean([r.minutes for r in fold_results]):.1f} | | {mean['greedy'][0]:.2%} | "
              f"{mean['beam'][0]:.2%} | {mean['greedy'][1]:.2%} | {mean['beam'][1]:.2%} |")
    print("\n(* stopped by the time budget, its last epoch partial)\n")
    if index_result:
        wer = index_result.rates["beam"][0]
        print(f"- index split: beam WER {wer:.2%}, target <= {TARGET_INDEX_WER:.0%} within "
              f"{TARGET_MINUTES:g} min: {verdict(wer, TARGET_INDEX_WER, [index_result], args.minutes)}")
    if word_accuracy:
        print(f"- word model on the {word_accuracy[1]} single test recordings: "
              f"accuracy {word_accuracy[0]:.2%}")
    if fold_results:
        wer = float(mean["beam"][0])
        every = "" if len(fold_results) == len(speakers) else f" ({len(fold_results)} of {len(speakers)})"
        print(f"- unseen speakers{every}: mean beam WER {wer:.2%}, target <= {TARGET_SPEAKER_WER:.0%} "
              f"within {TARGET_MINUTES:g} min per fold: "
              f"{verdict(wer, TARGET_SPEAKER_WER, fold_results, fold_minutes)}")
    print(machine_line("end"), flush=True)


if __name__ == "__main__":
    main()
