"""Epoch time of the word recogniser's training with `--jit-compile off` and `on`, interleaved.

    python benchmarks/jit_compile.py [--rounds 2] [--epochs 6] [--train-args '--limit 200']

Trains `gru-suite train speech` on its offline sample (fixed-length clips, so
XLA compiles once) through the app's own `train`, alternating off / on each
round, and prints the first epoch (tracing and, with XLA, compiling) and the
mean of the later epochs for each. Speed figures move with load: run it on an
idle machine and quote it with its date.
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

APP = "speech"


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
    parser.add_argument("--rounds", type=int, default=2, help="off/on pairs, default 2")
    parser.add_argument("--epochs", type=int, default=6, help="epochs per training, default 6")
    parser.add_argument("--train-args", default="", help="more `gru-suite train speech` arguments")
    args = parser.parse_args()
    load_app_packages()
    app = registered_app(APP)
    times: dict[str, list[list[float]]] = {"off": [], "on": []}
    for round_index in range(args.rounds):
        for mode in ("off", "on"):
            with tempfile.TemporaryDirectory(prefix="jit_compile_") as run_dir:
                config = settings_from(app.Train, [
                    "--epochs", str(args.epochs), "--jit-compile", mode, "--verbose", "0", "--no-log",
                    "--no-export", "--fresh", "--run-dir", run_dir, *shlex.split(args.train_args)])
                keras.backend.clear_session()
                set_seed(config.seed)
                timer = EpochTimes()
                app.train(config, app.load_data(config), Fitting(config, Path(run_dir), callbacks=[timer]))
            times[mode].append(timer.seconds)
            later = statistics.mean(timer.seconds[1:])
            print(f"round {round_index + 1}, --jit-compile {mode}: first epoch "
                  f"{timer.seconds[0]:.2f} s, later epochs {later:.3f} s each", flush=True)
    print("\n| --jit-compile | first epoch (s) | later epochs (s each) |")
    print("|---|---:|---:|")
    for mode, runs in times.items():
        first = statistics.mean(run[0] for run in runs)
        later = statistics.mean(statistics.mean(run[1:]) for run in runs)
        print(f"| {mode} | {first:.2f} | {later:.3f} |")
    off = statistics.mean(statistics.mean(run[1:]) for run in times["off"])
    on = statistics.mean(statistics.mean(run[1:]) for run in times["on"])
    print(f"\nlater epochs, on / off: {on / off:.2f}")


if __name__ == "__main__":
    main()
