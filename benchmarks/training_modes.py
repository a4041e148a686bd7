"""Epoch time of one app's training in each mode: `--jit-compile off|on`, `--mixed-precision ...`.

    python benchmarks/training_modes.py [--app speech] [--rounds 2] [--epochs 6]
        [--train-args '--limit 200'] [--modes '--jit-compile off' '--jit-compile on' ...]

Trains `gru-suite train APP` on its offline sample through the app's own
`train`, once per mode in each round (the modes interleaved), and prints the
first epoch (tracing and, with XLA, compiling) and the median of the later
epochs for each, with each mode's later epochs as a ratio to the first
mode's. Speed figures move with load: run it on an idle machine and quote it
with its date.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402

from apps.common.app import Fitting  # noqa: E402
from apps.common.running import registered_app, settings_from  # noqa: E402
from apps.common.training import set_seed  # noqa: E402
from apps.registry import load_app_packages  # noqa: E402

MODES = ("--jit-compile off", "--jit-compile on", "--mixed-precision mixed_bfloat16",
         "--mixed-precision mixed_float16")


class EpochTimes(keras.callbacks.Callback):
    """Wall time of each epoch."""

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", default="speech", help="the app to train, default speech")
    parser.add_argument("--modes", nargs="+", default=MODES,
                        help="train arguments of each mode; default: XLA off and on, and both mixed precisions")
    parser.add_argument("--rounds", type=int, default=2, help="passes over the modes, default 2")
    parser.add_argument("--epochs", type=int, default=6, help="epochs per training, default 6")
    parser.add_argument("--train-args", default="", help="more `gru-suite train APP` arguments, for every mode")
    args = parser.parse_args()
    load_app_packages()
    app = registered_app(args.app)
    times: dict[str, list[list[float]]] = {mode: [] for mode in args.modes}
    for round_index in range(args.rounds):
        for mode in args.modes:
            with tempfile.TemporaryDirectory(prefix="training_modes_") as run_dir:
                config = settings_from(app.Train, [
                    "--epochs", str(args.epochs), "--verbose", "0", "--no-log", "--no-export", "--fresh",
                    "--run-dir", run_dir, *shlex.split(args.train_args), *shlex.split(mode)])
                keras.backend.clear_session()
                set_seed(config.seed)
                timer = EpochTimes()
                app.train(config, app.load_data(config), Fitting(config, Path(run_dir), callbacks=[timer]))
            times[mode].append(timer.seconds)
            later = statistics.median(timer.seconds[1:])
            print(f"round {round_index + 1}, {mode}: first epoch "
                  f"{timer.seconds[0]:.2f} s, later epochs {later:.3f} s each", flush=True)
    later = {mode: statistics.mean(statistics.median(run[1:]) for run in runs) for mode, runs in times.items()}
    baseline = later[args.modes[0]]
    print(f"\n{args.app}, {args.epochs} epochs, {args.rounds} round(s)\n")
    print("| mode | first epoch (s) | later epochs (s each) | later epochs / first mode's |")
    print("|---|---:|---:|---:|")
    for mode, runs in times.items():
        first = statistics.mean(run[0] for run in runs)
        print(f"| `{mode}` | {first:.2f} | {later[mode]:.3f} | {later[mode] / baseline:.2f} |")


if __name__ == "__main__":
    main()
