"""Training plumbing shared by the apps: seeds, fitting, run folders, reports."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
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

from gru_core.keras_private import flatten_layers

from apps.common.distributed import (
    backup_folder, fit_across_workers, is_chief, is_multi_worker, worker_description,
)
from apps.common.monitoring import monitoring_callbacks, probe_batch


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
    # Per-epoch logs of the fit (loss, validation loss, metrics, learning rate, gates).
    history: dict[str, list[float]] = dataclasses.field(default_factory=dict)
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


# Settings that change where results go or how much is printed, not what is trained.
_NOT_PART_OF_THE_RUN = {"verbose", "export_dir", "no_export", "report", "run_dir", "fresh", "log_dir", "no_log"}
# The run folder's TensorBoard logs and history.csv (`--log-dir` moves them).
LOG_FOLDER = "logs"


def run_directory(app: str, config: Any) -> Path:
    """The run folder: `config.run_dir`, or one named by a hash of the training settings.

    `config` is a dataclass (an app's train config). The same settings map
    to the same folder, which is what lets a killed training resume where it
    stopped.
    """
    if config.run_dir is not None:
        return Path(config.run_dir)
    settings = {
        field.name: str(getattr(config, field.name))
        for field in dataclasses.fields(config)
        if field.name not in _NOT_PART_OF_THE_RUN
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
    return [inner for inner in flatten_layers(layer) if isinstance(inner, keras.layers.RNN)]


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


class TimeBudget(keras.callbacks.Callback):
    """Stops training once `minutes` have passed (checked after every batch)."""

    def __init__(self, minutes: float):
        super().__init__()
        self.seconds = minutes * 60.0
        self.stopped_early = False

    def on_train_begin(self, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if time.perf_counter() - self._start > self.seconds:
            self.model.stop_training = True
            self.stopped_early = True


def write_report(report: TrainReport, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(dataclasses.asdict(report), indent=2, default=str))


def weights_fingerprint(model: keras.Model) -> str:
    """SHA-256 of all of `model`'s weights: equal on every worker of a multi-worker run."""
    digest = hashlib.sha256()
    for weights in model.get_weights():
        digest.update(np.ascontiguousarray(weights).tobytes())
    return digest.hexdigest()


def publish_report(report: TrainReport, report_path: Path | None, model: keras.Model) -> TrainReport:
    """Completes `report` from the trained `model` and the process, prints it, writes `report_path`.

    Adds the parameter counts, the weights' fingerprint, the peak memory and,
    in a multi-worker run, which worker this is.
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
    if report_path is not None:
        write_report(report, Path(report_path))
    return report


def set_jit_compile(model: keras.Model, jit_compile: bool | str) -> bool:
    """Overrides the compiled model's `jit_compile` unless "auto"; returns whether its training
    step is XLA-compiled (for "auto": Keras's choice)."""
    if jit_compile != "auto":
        model.jit_compile = jit_compile
    return bool(model.jit_compile)


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
    log_dir: Path | None = None,
    patience: int | None = None,
    jit_compile: bool | str = "auto",
    **fit_kwargs,
) -> keras.callbacks.History:
    """`model.fit` with the suite's standard callbacks; every app trains through here.

    Each epoch's logs gain the learning rate and the first `gru_core.GRU`'s
    mean gate activity on the first validation batch (`apps.common.monitoring`);
    with `log_dir`, they also go to TensorBoard and to `history.csv` there.
    With `patience`, training stops after that many epochs without a lower
    validation loss (training loss without validation data) and restores the
    best epoch's weights. `jit_compile` (True, False or "auto") overrides the
    compiled model's.

    With `backup_dir`, the training state (weights, optimizer, epoch) is backed
    up every `checkpoint_every` batches; a fit that finds a backup there (left
    by a run that was killed) resumes from it, unless `fresh`. The backup is
    deleted when training completes. The model must be built beforehand.

    A model built under a multi-worker strategy trains with
    `fit_across_workers` (same arguments, same callbacks).
    """
    strategy = getattr(model, "distribute_strategy", None)  # TensorFlow's models only
    set_jit_compile(model, jit_compile)
    resuming = False
    if backup_dir is not None:
        backup_dir = backup_folder(Path(backup_dir), strategy)
        if fresh and backup_dir.exists():
            shutil.rmtree(backup_dir)
        resuming = backup_dir.exists()
    if log_dir is not None and not is_chief():
        log_dir = None  # one worker's logs are the run's
    probe = probe_batch(validation_data if validation_data is not None else train_data)
    callbacks = monitoring_callbacks(log_dir, probe, append=resuming) + list(callbacks or [])
    if patience is not None:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor="val_loss" if validation_data is not None else "loss", patience=patience,
            restore_best_weights=True,
        ))
    if backup_dir is not None:
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


def format_table(rows: list[dict], output_format: str) -> str:
    """`rows` (dicts with the same keys) as a markdown table, CSV or JSON."""
    if output_format == "json":
        return json.dumps(rows, indent=2)
    columns = list(rows[0]) if rows else []
    if output_format == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue()
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines)
