"""Spoken-digit accuracy of the speech app on the Free Spoken Digit Dataset.

Two measurements on `<data-dir>/fsdd/recordings` (8 kHz WAV,
`{digit}_{speaker}_{index}.wav`, five speakers):

1. the data set's own split: train on recording indices 5-49, test on 0-4;
2. leave one speaker out: train on four speakers, test on the fifth, for each
   speaker in turn, and average.

    python benchmarks/speech_quality.py --data-dir ../shared/datasets [--cell gru]
        [--test-speeds 0.85,0.9,1,1.1,1.15] [--synthetic-speakers [DIR]]
        [--synthetic-rate 8000] [--min-frequency 100] [--max-frequency 4000]
        [--ensemble K] [--streaming]

`--test-speeds` averages each model over its input played at several speeds
(what `train speech --test-speeds` exports); `--synthetic-speakers [DIR]` adds
synthetic espeak-ng digits to every training set (more voices, none of them a
real speaker's): the app's sample, or a larger set that `make_sample` writes;
`--synthetic-rate 8000` narrows those clips to FSDD's own bandwidth;
`--max-frequency 4000` ends the features' mel filters at that bandwidth too, and
`--min-frequency 100` starts them above the hum and lowest pitch. `--streaming`
trains `train speech --streaming`'s model (causal features and convolutions,
unidirectional GRUs); its accuracy on whole clips is its streamed answer at
each clip's end.

Targets: >= 0.98 on the index split, >= 0.90 averaged over unseen speakers.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import librosa  # noqa: E402
import numpy as np  # noqa: E402

from apps.common.audio import CLIP_SAMPLES, SAMPLE_RATE  # noqa: E402
from apps.common.cells import CELLS  # noqa: E402
from apps.common.speech_features import FEATURES  # noqa: E402
from apps.speech.data import AudioSplit, load_data, load_flat_folder, SpeechData  # noqa: E402
from apps.speech.serving import served_probabilities, speech_server  # noqa: E402
from apps.speech.settings import SPEEDS, SpeechTrain  # noqa: E402
from apps.speech.synthesis import DIGITS  # noqa: E402
from apps.speech.training import train_speech_model  # noqa: E402


def speaker_of(file_name: str) -> str:
    return Path(file_name).stem.split("_")[1]


def subset(split: AudioSplit, keep: np.ndarray) -> AudioSplit:
    return AudioSplit(
        split.waveforms[keep], split.labels[keep], [f for f, k in zip(split.files, keep) if k]
    )


def synthetic_digits(labels: list[str], source: str, through_rate: int | None = None) -> AudioSplit:
    """The spoken digits of `source` ("sample", or a folder `make_sample` wrote), labelled as FSDD's.

    `through_rate`: each clip is resampled to this rate and back (to FSDD's 8 kHz,
    so the synthetic voices have no more bandwidth than the recordings).
    """
    sample = load_data(source)
    waveforms, label_ids, files = [], [], []
    for split in (sample.train, sample.validation, sample.test):
        for waveform, label, file in zip(split.waveforms, split.labels, split.files):
            word = sample.labels[label]
            if word in DIGITS:
                waveforms.append(waveform)
                label_ids.append(labels.index(str(DIGITS.index(word))))
                files.append(file)
    waveforms = np.stack(waveforms)
    if through_rate:
        narrow = librosa.resample(waveforms, orig_sr=SAMPLE_RATE, target_sr=through_rate)
        waveforms = librosa.resample(narrow, orig_sr=through_rate, target_sr=SAMPLE_RATE)
        waveforms = librosa.util.fix_length(waveforms, size=CLIP_SAMPLES, axis=-1).astype(np.float32)
    return AudioSplit(waveforms, np.array(label_ids, np.int64), files)


def joined(first: AudioSplit, second: AudioSplit) -> AudioSplit:
    return AudioSplit(
        np.concatenate([first.waveforms, second.waveforms]),
        np.concatenate([first.labels, second.labels.astype(first.labels.dtype)]),
        first.files + second.files,
    )


def accuracy(
    data: SpeechData, args: argparse.Namespace, epochs: int, extra: AudioSplit | None
) -> tuple[float, float]:
    """Trains `args.ensemble` models on `data.train` (plus `extra`); returns (test accuracy
    of their averaged log-probabilities, seconds)."""
    start = time.perf_counter()
    if extra is not None:
        data = SpeechData(data.name, data.labels, joined(data.train, extra), data.validation,
                          data.test, data.noise)
    log_probabilities = 0.0
    for member in range(args.ensemble):
        config = SpeechTrain(
            cell=args.cell, units=args.units, epochs=epochs, batch_size=args.batch_size,
            learning_rate=args.learning_rate, min_frequency=args.min_frequency,
            max_frequency=args.max_frequency, seed=args.seed + member, verbose=args.verbose,
            streaming=args.streaming,
        )
        model = train_speech_model(data, config)
        server = speech_server(model, data.labels, args.test_speeds, args.streaming)
        log_probabilities += np.log(served_probabilities(server.serve, data.test.waveforms) + 1e-7)
    predicted = np.argmax(log_probabilities, axis=-1)
    return float(np.mean(predicted == data.test.labels)), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--cell", choices=sorted(CELLS), default=SpeechTrain.cell)
    parser.add_argument("--units", type=int, default=SpeechTrain.units)
    parser.add_argument("--epochs", type=int, default=25, help="epochs on the index split")
    parser.add_argument(
        "--speaker-epochs", type=int, default=30, help="epochs per leave-one-speaker-out fold"
    )
    parser.add_argument("--batch-size", type=int, default=SpeechTrain.batch_size)
    parser.add_argument("--learning-rate", type=float, default=SpeechTrain.learning_rate)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--only",
        choices=("index", "speakers"),
        default=None,
        help="run one of the two measurements",
    )
    parser.add_argument("--test-speeds", type=SPEEDS, default=(1.0,), metavar="S1,S2,...",
                        help="average the model over the clip played at these speeds (as "
                             "`train speech --test-speeds`); default 1")
    parser.add_argument("--synthetic-speakers", nargs="?", const="sample", default=None,
                        metavar="DIR",
                        help="also train on synthetic espeak-ng digits: the app's sample (160 "
                             "clips, 8 voices) or a folder written by `python -m "
                             "apps.speech.make_sample --out DIR --digits --voices many`")
    parser.add_argument("--synthetic-rate", type=int, default=None, metavar="HZ",
                        help="resample the synthetic clips to this rate and back (8000: "
                             "FSDD's bandwidth)")
    parser.add_argument("--min-frequency", type=float, default=FEATURES.lower_hertz,
                        metavar="HZ", help="bottom of the mel filter bank; "
                        f"default {FEATURES.lower_hertz:g}")
    parser.add_argument("--max-frequency", type=float, default=FEATURES.upper_hertz,
                        metavar="HZ", help="top of the mel filter bank (4000: FSDD's bandwidth); "
                        f"default {FEATURES.upper_hertz:g}")
    parser.add_argument("--ensemble", type=int, default=1,
                        help="models per measurement (seeds seed, seed+1, ...), averaged; default 1")
    parser.add_argument("--streaming", action="store_true", help="the streaming model (train speech --streaming)")
    parser.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2))
    args = parser.parse_args()

    recordings = args.data_dir / "fsdd" / "recordings"
    if not recordings.is_dir():
        raise SystemExit(f"{recordings}: not found (pass --data-dir, the folder holding fsdd/).")
    start = time.perf_counter()
    data = load_flat_folder(recordings, "fsdd")
    extra = None
    if args.synthetic_speakers:
        extra = synthetic_digits(data.labels, args.synthetic_speakers, args.synthetic_rate)
    print(
        f"decoded {len(data.train) + len(data.test)} recordings in "
        f"{time.perf_counter() - start:.0f} s; cell={args.cell} units={args.units} "
        f"{'streaming' if args.streaming else 'bidirectional'}; mel filters "
        f"{args.min_frequency:g}-{args.max_frequency:g} Hz; test speeds {args.test_speeds}; "
        f"synthetic speakers: {args.synthetic_speakers} "
        f"(through {args.synthetic_rate or SAMPLE_RATE} Hz)",
        flush=True,
    )

    if args.only in (None, "index"):
        value, seconds = accuracy(data, args, args.epochs, extra)
        print(
            f"index split (train 5-49, test 0-4): accuracy {value:.4f} "
            f"({len(data.train)}/{len(data.test)} clips, {args.epochs} epochs, {seconds:.0f} s)",
            flush=True,
        )

    if args.only in (None, "speakers"):
        everything = joined(data.train, data.test)
        speakers = np.array([speaker_of(f) for f in everything.files])
        results, total = {}, 0.0
        for speaker in sorted(set(speakers)):
            fold = SpeechData(
                f"fsdd without {speaker}",
                data.labels,
                subset(everything, speakers != speaker),
                data.validation,
                subset(everything, speakers == speaker),
                data.noise,
            )
            results[speaker], seconds = accuracy(fold, args, args.speaker_epochs, extra)
            total += seconds
            print(
                f"  unseen speaker {speaker}: accuracy {results[speaker]:.4f} ({seconds:.0f} s)",
                flush=True,
            )
        print(
            f"leave one speaker out: mean accuracy {np.mean(list(results.values())):.4f} "
            f"({args.speaker_epochs} epochs per fold, {total:.0f} s in all)",
            flush=True,
        )


if __name__ == "__main__":
    main()
