"""Training plumbing shared by the apps: arguments, seeds, fitting, reports."""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import resource
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from apps.common.cells import CELLS
from apps.common.distributed import (
    STRATEGIES, backup_folder, fit_across_workers, is_multi_worker,
    worker_description,
)
from apps.common.export import DEFAULT_ROOT


@dataclass
class TrainReport:
    """What `gru-suite train APP` measured, for printing and for `reproduce`/`compare`."""

    app: str
    data: str
    cell: str
    metric: str
    value: float
    train_seconds: float
    epochs: int
    export_path: str | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    # Filled in by publish_report from the trained model and the process.
    parameters: int = 0
    recurrent_parameters: int = 0
    weights_sha256: str | None = None
    peak_memory_mb: float | None = None

    def summary(self) -> str:
        lines = [
            f"{self.app} ({self.cell}) on {self.data}: {self.metric} = {self.value:.4f}",
            f"  trained {self.epochs} epoch(s) in {self.train_seconds:.1f} s, "
            f"{self.parameters:,} parameters",
        ]
        lines += [f"  {key}: {value}" for key, value in self.extra.items()]
        if self.export_path:
            lines.append(f"  exported to {self.export_path}")
        return "\n".join(lines)


def add_training_arguments(
    parser: argparse.ArgumentParser,
    *,
    epochs: int,
    batch_size: int,
    units: int,
) -> None:
    """The arguments every `gru-suite train APP` takes."""
    group = parser.add_argument_group("training")
    group.add_argument("--epochs", type=int, default=epochs, help=f"default {epochs}")
    group.add_argument("--batch-size", type=int, default=batch_size, help=f"default {batch_size}")
    group.add_argument("--units", type=int, default=units, help=f"recurrent units, default {units}")
    group.add_argument("--cell", choices=sorted(CELLS), default="gru",
                       help="recurrent layer: gru_core.GRU (default), Keras LSTM or SimpleRNN")
    group.add_argument("--seed", type=int, default=0, help="random seed, default 0")
    group.add_argument("--limit", type=int, default=None,
                       help="use at most this many training examples")
    group.add_argument("--export-dir", type=Path, default=DEFAULT_ROOT,
                       help=f"root of the versioned exports, default {DEFAULT_ROOT}/")
    group.add_argument("--no-export", action="store_true", help="train and evaluate only")
    group.add_argument("--verbose", type=int, default=1, choices=(0, 1, 2),
                       help="Keras progress output: 0 silent, 1 bar (default), 2 one line per epoch")
    group.add_argument("--report", type=Path, default=None,
                       help="also write the training report as JSON to this file")
    runs = parser.add_argument_group("runs, checkpoints and distribution")
    runs.add_argument("--run-dir", type=Path, default=None,
                      help="where checkpoints go; by default runs/<app>/<hash of the arguments>, "
                           "so the same command resumes an interrupted run")
    runs.add_argument("--fresh", action="store_true",
                      help="ignore any checkpoint of an interrupted run and start over")
    runs.add_argument("--checkpoint-every", type=int, default=50, metavar="STEPS",
                      help="back up the training state every STEPS batches (default 50)")
    runs.add_argument("--strategy", choices=sorted(STRATEGIES), default="default",
                      help="tf.distribute strategy: default (one device), mirrored (all local "
                           "GPUs) or multi-worker (every worker in TF_CONFIG; see the README)")


# Arguments that change where results go or how much is printed, not what is trained.
_NOT_PART_OF_THE_RUN = {"verbose", "export_dir", "no_export", "report", "run_dir", "fresh", "command"}


def run_directory(app: str, args: argparse.Namespace) -> Path:
    """The run folder: `--run-dir`, or one named by a hash of the training arguments.

    The same command maps to the same folder, which is what lets a killed
    training resume where it stopped.
    """
    if args.run_dir is not None:
        return Path(args.run_dir)
    settings = {
        key: str(value) for key, value in sorted(vars(args).items()) if key not in _NOT_PART_OF_THE_RUN
    }
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    return Path("runs") / app / digest


def set_seed(seed: int) -> None:
    """Seeds Python, NumPy and the backend, so a run with the same seed repeats."""
    keras.utils.set_random_seed(seed)


def count_parameters(model: keras.Model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def recurrent_layers(layer: keras.layers.Layer) -> list[keras.layers.RNN]:
    """The recurrent layers anywhere inside `layer` (Bidirectional wrappers, custom layers, nested models)."""
    # Keras's own walk over tracked sub-layers; there is no public equivalent
    # that enters custom layers.
    return [
        inner for inner in layer._flatten_layers(include_self=True, recursive=True)
        if isinstance(inner, keras.layers.RNN)
    ]


def count_recurrent_parameters(model: keras.Model) -> int:
    """Parameters of the recurrent layers alone, where GRU, LSTM and RNN differ."""
    return int(sum(count_parameters(layer) for layer in recurrent_layers(model)))


class Stopwatch:
    """Measures the wall time of a `with` block in `seconds`."""

    def __enter__(self) -> "Stopwatch":
        self._start = time.perf_counter()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc) -> None:
        self.seconds = time.perf_counter() - self._start


def write_report(report: TrainReport, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dataclasses.asdict(report), indent=2, default=str))


def weights_fingerprint(model: keras.Model) -> str:
    """SHA-256 of all of `model`'s weights: equal on every worker of a multi-worker run."""
    digest = hashlib.sha256()
    for weights in model.get_weights():
        digest.update(np.ascontiguousarray(weights).tobytes())
    return digest.hexdigest()


def publish_report(report: TrainReport, args: argparse.Namespace, model: keras.Model) -> TrainReport:
    """Completes `report` from the trained `model` and the process, prints it, writes `--report`.

    Adds the parameter counts, the weights' fingerprint, the peak memory and,
    in a multi-worker run, which worker this is. Every train command ends with
    `return publish_report(report, args, model)`.
    """
    report.parameters = count_parameters(model)
    report.recurrent_parameters = count_recurrent_parameters(model)
    report.weights_sha256 = weights_fingerprint(model)
    if is_multi_worker(model.distribute_strategy):
        report.extra["distributed"] = worker_description(model.distribute_strategy)
    if report.peak_memory_mb is None:
        # ru_maxrss is in KiB on Linux: the peak resident memory of this process.
        report.peak_memory_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(report.summary())
    if getattr(args, "report", None):
        write_report(report, Path(args.report))
    return report


def fit(
    model: keras.Model,
    train_data,
    *,
    epochs: int,
    validation_data=None,
    verbose: int = 1,
    callbacks: list[keras.callbacks.Callback] | None = None,
    backup_dir: Path | None = None,
    checkpoint_every: int | str = "epoch",
    fresh: bool = False,
    **fit_kwargs,
) -> keras.callbacks.History:
    """`model.fit` with the suite's standard callbacks; every app trains through here.

    With `backup_dir`, the training state (weights, optimizer, epoch) is backed
    up every `checkpoint_every` batches; a fit that finds a backup there (left
    by a run that was killed) resumes from it, unless `fresh`. The backup is
    deleted when training completes. The model must be built beforehand.

    A model built under a multi-worker strategy trains with
    `fit_across_workers` (same arguments, same callbacks).
    """
    callbacks = list(callbacks or [])
    strategy = model.distribute_strategy
    if backup_dir is not None:
        backup_dir = backup_folder(Path(backup_dir), strategy)
        if fresh and backup_dir.exists():
            shutil.rmtree(backup_dir)
        callbacks.append(
            keras.callbacks.BackupAndRestore(
                str(backup_dir), save_freq=checkpoint_every, double_checkpoint=True
            )
        )
    if is_multi_worker(strategy):
        return fit_across_workers(
            model, train_data, epochs=epochs, validation_data=validation_data,
            callbacks=callbacks, verbose=verbose, **fit_kwargs,
        )
    if isinstance(train_data, tf.data.Dataset):
        # A Dataset shuffles itself; Keras warns when fit is asked to as well.
        fit_kwargs.setdefault("shuffle", False)
    return model.fit(
        train_data,
        validation_data=validation_data,
        epochs=epochs,
        verbose=verbose,
        callbacks=callbacks,
        **fit_kwargs,
    )
