"""What the transcriber learns from each digit set: the quick model on speech it never heard.

`reproduce --quick` trains the transcriber for about a minute on 600 strings
of its default `digits` set (joined from the shipped clips of 8 synthetic
voices). This trains that same quick model, with the app's own settings and
training, on 600 strings of each set named by `--sets`, and scores each
(beam decoding, WER pooled over the strings) on:

- its own test split;
- 400 `digits-espeak` strings of another seed (273 espeak-ng voices in
  connected speech; skipped without espeak-ng);
- FSDD strings of real speech: the recordings of indices 0-4 of all five
  speakers in `<data-dir>/fsdd/recordings`, joined as
  `transcription_quality.py` joins them (skipped without the folder);
- the shipped example, espeak-ng saying "four two seven".

    python benchmarks/digit_sets.py [--data-dir ../shared/datasets] [--sets digits,digits-espeak]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from apps.common.app import Fitting  # noqa: E402
from apps.common.audio import load_audio  # noqa: E402
from apps.common.running import settings_from  # noqa: E402
from apps.common.training import set_seed  # noqa: E402
from apps.transcriber.app import EXAMPLE, TRANSCRIBER  # noqa: E402
from apps.transcriber.data import TranscribedSplit  # noqa: E402
from apps.transcriber.digit_strings import load_espeak_digits  # noqa: E402
from apps.transcriber.serving import error_rates, transcribe_batches  # noqa: E402
from apps.transcriber.settings import TranscriberTrain  # noqa: E402
from transcription_quality import TEST_INDICES, digit_strings, machine_line, read_recordings  # noqa: E402

STRINGS = 600  # as the quick mode's
HELD_OUT_SEED = 7  # the digits-espeak strings scored on: never a training set's


def quick_config(data: str, run_dir: Path) -> TranscriberTrain:
    """The app's `reproduce --quick` settings for the transcriber, on `data`."""
    return settings_from(TranscriberTrain, [*TRANSCRIBER.quick_args, "--data", data, "--verbose", "0",
                                            "--fresh", "--run-dir", str(run_dir)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/datasets"),
                        help="folder holding fsdd/recordings; default ../shared/datasets")
    parser.add_argument("--sets", type=lambda text: text.split(","), default=["digits", "digits-espeak"],
                        metavar="A,B", help="the digit sets to train on; default digits,digits-espeak")
    parser.add_argument("--fsdd-strings", type=int, default=300, help="default 300")
    parser.add_argument("--espeak-strings", type=int, default=400, help="default 400")
    args = parser.parse_args()
    unknown = set(args.sets) - {"digits", "digits-espeak"}
    if unknown:
        raise SystemExit(f"--sets: {', '.join(sorted(unknown))} is not digits or digits-espeak.")
    espeak = shutil.which("espeak-ng") is not None
    if "digits-espeak" in args.sets and not espeak:
        raise SystemExit("--sets digits-espeak needs espeak-ng (apt-get install -y espeak-ng).")
    print(machine_line("start"), flush=True)

    scored: dict[str, TranscribedSplit] = {}
    if espeak:
        held_out = load_espeak_digits(2000, seed=HELD_OUT_SEED)
        scored["digits-espeak, another seed"] = TranscribedSplit(
            held_out.train.waveforms[:args.espeak_strings], held_out.train.transcripts[:args.espeak_strings])
    recordings_dir = args.data_dir / "fsdd" / "recordings"
    if recordings_dir.is_dir():
        recordings = [r for r in read_recordings(recordings_dir) if r.index in TEST_INDICES]
        scored["FSDD (real speech)"] = digit_strings(recordings, args.fsdd_strings, seed=5)

    rows = []
    for name in args.sets:
        set_seed(0)
        with tempfile.TemporaryDirectory(prefix="digit_sets_") as run_dir:
            config = quick_config(f"{name}:{STRINGS}", Path(run_dir))
            data = TRANSCRIBER.load_data(config)
            start = time.perf_counter()
            trained = TRANSCRIBER.train(config, data, Fitting(config, Path(run_dir)))
            seconds = time.perf_counter() - start
        beam = trained.serving.endpoints["beam"]
        wers = {"own test split": error_rates(data.test.transcripts,
                                              transcribe_batches(beam, data.test.waveforms))[0]}
        for label, split in scored.items():
            wers[label] = error_rates(split.transcripts, transcribe_batches(beam, split.waveforms))[0]
        said = transcribe_batches(beam, [load_audio(EXAMPLE)])[0]
        print(f"{name}: {seconds:.0f} s of training; " + "; ".join(f"{k} WER {v:.4f}" for k, v in wers.items())
              + f"; 'four two seven' (espeak-ng) -> {said!r}", flush=True)
        rows.append((name, seconds, wers, said))

    columns = list(rows[0][2])
    print(f"\n## The quick transcriber ({STRINGS} strings) by training set, beam WER\n")
    print("| trained on | training (s) | " + " | ".join(columns) + " | 'four two seven' -> |")
    print("| --- | --- | " + " | ".join("---" for _ in columns) + " | --- |")
    for name, seconds, wers, said in rows:
        print(f"| {name} | {seconds:.0f} | " + " | ".join(f"{wers[c]:.2%}" for c in columns) + f" | {said!r} |")
    print(machine_line("\nend"), flush=True)


if __name__ == "__main__":
    main()
