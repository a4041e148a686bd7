"""Training plumbing shared by the apps: arguments, seeds, fitting, reports."""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np

from apps.common.cells import CELLS
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
    parameters: int
    export_path: str | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

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


def set_seed(seed: int) -> None:
    """Seeds Python, NumPy and the backend, so a run with the same seed repeats."""
    keras.utils.set_random_seed(seed)


def count_parameters(model: keras.Model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


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


def fit(
    model: keras.Model,
    train_data,
    *,
    epochs: int,
    validation_data=None,
    verbose: int = 1,
    callbacks: list[keras.callbacks.Callback] | None = None,
    **fit_kwargs,
) -> keras.callbacks.History:
    """`model.fit` with the suite's standard callbacks; every app trains through here."""
    return model.fit(
        train_data,
        validation_data=validation_data,
        epochs=epochs,
        verbose=verbose,
        callbacks=list(callbacks or []),
        **fit_kwargs,
    )
