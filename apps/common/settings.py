"""The settings every command of a kind shares: `TrainConfig` for every train, `ExportConfig` for
every command that runs an export, and the settings whose defaults each app chooses."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from apps.common.cells import CELLS
from apps.common.config import Config, ExistingPath, at_least, setting
from apps.common.distributed import STRATEGIES
from apps.common.export import DEFAULT_ROOT

SEEDS = at_least(0, maximum=2**31 - 1)


def epochs_setting(default: int) -> Any:
    return setting(default, "passes over the training data", check=at_least(1, maximum=100_000),
                   group="training")


def batch_size_setting(default: int) -> Any:
    return setting(default, "examples per batch", check=at_least(1, maximum=65_536), group="training")


def units_setting(default: int) -> Any:
    return setting(default, "recurrent units", check=at_least(1, maximum=4096), group="training")


def split_seed_setting() -> Any:
    """`--seed` of data settings: the seed of a held-out split drawn at random (as in train)."""
    return setting(0, "seed of the held-out split of data without one (as in train)",
                   check=SEEDS, group="data")


@dataclasses.dataclass(frozen=True)
class TrainConfig(Config):
    """The settings of every `gru-suite train APP`; apps add theirs in a subclass."""

    epochs: int = epochs_setting(10)
    batch_size: int = batch_size_setting(32)
    units: int = units_setting(32)
    cell: str = setting("gru", "recurrent layer: gru_core.GRU, Keras LSTM or SimpleRNN",
                        choices=tuple(sorted(CELLS)), group="training")
    seed: int = setting(0, "random seed", check=SEEDS, group="training")
    limit: int | None = setting(None, "use at most this many training examples",
                                check=at_least(1), group="training")
    export_dir: Path = setting(DEFAULT_ROOT, "root of the versioned exports", group="training")
    no_export: bool = setting(False, "train and evaluate only", group="training")
    verbose: int = setting(1, "Keras progress output: 0 silent, 1 bar, 2 one line per epoch",
                           choices=(0, 1, 2), check=at_least(0, maximum=2), group="training")
    report: Path | None = setting(None, "also write the training report as JSON to this file",
                                  group="training")
    run_dir: Path | None = setting(
        None, "where checkpoints go; by default runs/<app>/<hash of the settings>, so the same "
        "command resumes an interrupted run", group="runs, checkpoints and distribution")
    fresh: bool = setting(False, "ignore any checkpoint of an interrupted run and start over",
                          group="runs, checkpoints and distribution")
    checkpoint_every: int = setting(50, "back up the training state every STEPS batches",
                                    check=at_least(1), metavar="STEPS",
                                    group="runs, checkpoints and distribution")
    strategy: str = setting("default", "tf.distribute strategy: default (one device), mirrored "
                            "(all local GPUs) or multi-worker (every worker in TF_CONFIG)",
                            choices=tuple(sorted(STRATEGIES)),
                            group="runs, checkpoints and distribution")


@dataclasses.dataclass(frozen=True)
class ExportConfig(Config):
    """The settings of every command that runs an export (evaluate, predict, explain)."""

    model: Path | None = setting(
        None, "an export folder, or a folder of numbered versions (the newest is used); "
        "default saved_models/APP", check=ExistingPath("folder"))
