"""Spoken-digit accuracy of the speech app on the Free Spoken Digit Dataset.

Two measurements on `<data-dir>/fsdd/recordings` (8 kHz WAV,
`{digit}_{speaker}_{index}.wav`, five speakers):

1. the data set's own split: train on recording indices 5-49, test on 0-4;
2. leave one speaker out: train on four speakers, test on the fifth, for each
   speaker in turn, and average.

    python benchmarks/speech_quality.py --data-dir ../shared/datasets [--cell gru]

Targets: >= 0.98 on the index split, >= 0.90 averaged over unseen speakers.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from apps.common.cells import CELLS  # noqa: E402
from apps.speech.commands import train_speech_model  # noqa: E402
from apps.speech.data import AudioSplit, SpeechData, load_flat_folder  # noqa: E402


def speaker_of(file_name: str) -> str:
    return Path(file_name).stem.split("_")[1]


def subset(split: AudioSplit, keep: np.ndarray) -> AudioSplit:
    return AudioSplit(
        split.waveforms[keep], split.labels[keep], [f for f, k in zip(split.files, keep) if k]
    )


def accuracy(data: SpeechData, args: argparse.Namespace, epochs: int) -> tuple[float, float]:
    """Trains on `data.train`; returns (test accuracy, seconds)."""
    start = time.perf_counter()
    model = train_speech_model(
        data,
        cell=args.cell,
        units=args.units,
        epochs=epochs,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        seed=args.seed,
        verbose=args.verbose,
    )
    predicted = np.argmax(model.predict(data.test.waveforms, batch_size=128, verbose=0), axis=-1)
    return float(np.mean(predicted == data.test.labels)), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--cell", choices=sorted(CELLS), default="gru")
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=25, help="epochs on the index split")
    parser.add_argument(
        "--speaker-epochs", type=int, default=30, help="epochs per leave-one-speaker-out fold"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--only",
        choices=("index", "speakers"),
        default=None,
        help="run one of the two measurements",
    )
    parser.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2))
    args = parser.parse_args()

    recordings = args.data_dir / "fsdd" / "recordings"
    if not recordings.is_dir():
        raise SystemExit(f"{recordings}: not found (pass --data-dir, the folder holding fsdd/).")
    start = time.perf_counter()
    data = load_flat_folder(recordings, "fsdd")
    print(
        f"decoded {len(data.train) + len(data.test)} recordings in "
        f"{time.perf_counter() - start:.0f} s; cell={args.cell} units={args.units}",
        flush=True,
    )

    if args.only in (None, "index"):
        value, seconds = accuracy(data, args, args.epochs)
        print(
            f"index split (train 5-49, test 0-4): accuracy {value:.4f} "
            f"({len(data.train)}/{len(data.test)} clips, {args.epochs} epochs, {seconds:.0f} s)",
            flush=True,
        )

    if args.only in (None, "speakers"):
        everything = AudioSplit(
            np.concatenate([data.train.waveforms, data.test.waveforms]),
            np.concatenate([data.train.labels, data.test.labels]),
            data.train.files + data.test.files,
        )
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
            results[speaker], seconds = accuracy(fold, args, args.speaker_epochs)
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
