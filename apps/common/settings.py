"""The settings every command of a kind shares: `TrainConfig` for every train, `ExportConfig` for
every command that runs an export, and the settings whose defaults each app chooses."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from apps.common.backend_fit import BACKENDS
from apps.common.cells import CELLS
from apps.common.config import Config, ConfigError, ExistingPath, SearchRange, at_least, fraction, positive, setting
from apps.common.distributed import STRATEGIES
from apps.common.export import DEFAULT_ROOT

SEEDS = at_least(0, maximum=2**31 - 1)


def epochs_setting(default: int) -> Any:
    return setting(default, "passes over the training data", check=at_least(1, maximum=100_000),
                   group="training")


def batch_size_setting(default: int) -> Any:
    return setting(default, "examples per batch, across all replicas (the global batch)",
                   check=at_least(1, maximum=65_536), group="training")


# The ranges `gru-suite tune` searches; each is declared once, with its setting.
UNITS_SEARCH = SearchRange(16, 256, log=True)
LEARNING_RATE_SEARCH = SearchRange(1e-4, 1e-2, log=True)
DROPOUT_SEARCH = SearchRange(0.0, 0.5)
EMBEDDING_SEARCH = SearchRange(16, 512, log=True)


def units_setting(default: int) -> Any:
    return setting(default, "recurrent units", check=at_least(1, maximum=4096), group="model",
                   search=UNITS_SEARCH)


def learning_rate_setting(default: float, help: str = "Adam learning rate") -> Any:
    return setting(default, help, check=positive(10.0), group="training", search=LEARNING_RATE_SEARCH)


def dropout_setting(default: float, help: str = "dropout rate") -> Any:
    return setting(default, help, check=fraction(), group="model", search=DROPOUT_SEARCH)


def embedding_dim_setting(default: int, help: str = "token vector size") -> Any:
    return setting(default, help, check=at_least(1, maximum=4096), group="model", search=EMBEDDING_SEARCH)


def split_seed_setting() -> Any:
    """`--seed` of data settings: the seed of a held-out split drawn at random (as in train)."""
    return setting(0, "seed of the held-out split of data without one (as in train)",
                   check=SEEDS, group="data")


# `--jit-compile`: Keras's `jit_compile` of the compiled model.
JIT_COMPILE = {"auto": "auto", "on": True, "off": False}
# `--mixed-precision`: the Keras dtype policy the model is built under.
MIXED_PRECISION = ("off", "mixed_float16", "mixed_bfloat16")


@dataclasses.dataclass(frozen=True)
class TrainConfig(Config):
    """The settings of every `gru-suite train APP`; apps add theirs in a subclass."""

    epochs: int = epochs_setting(10)
    batch_size: int = batch_size_setting(32)
    units: int = units_setting(32)
    cell: str = setting("gru", "recurrent layer: gru_core.GRU, Keras LSTM or SimpleRNN",
                        choices=tuple(sorted(CELLS)), group="model")
    seed: int = setting(0, "random seed", check=SEEDS, group="training")
    backend: str = setting(
        "tensorflow", "the Keras backend the fit runs on: tensorflow, or jax (the fit runs in a "
        "JAX process, `pip install gru-suite[jax]`; the weights come back and the export is the "
        "same TensorFlow SavedModel)", choices=BACKENDS, group="training")
    minutes: float | None = setting(None, "stop training after this many minutes (ends the "
                                    "running epoch early)", check=positive(), group="training")
    limit: int | None = setting(None, "use at most this many training examples",
                                check=at_least(1), group="training")
    patience: int | None = setting(
        None, "stop after this many epochs without a lower validation loss, and restore the "
        "weights of the best epoch (default: train every epoch)", check=at_least(1),
        metavar="EPOCHS", group="training")
    jit_compile: str = setting(
        "auto", "XLA compilation of the training step: auto (Keras's choice: off on CPU, on for "
        "one GPU), on or off", choices=tuple(JIT_COMPILE), group="training")
    mixed_precision: str = setting(
        "off", "compute in 16-bit floats with float32 weights: mixed_float16 (GPUs; the loss is "
        "scaled) or mixed_bfloat16 (TPUs, recent CPUs and GPUs); exports still take and return "
        "float32", choices=MIXED_PRECISION, group="training")
    export_dir: Path = setting(DEFAULT_ROOT, "root of the versioned exports", group="output")
    no_export: bool = setting(False, "train and evaluate only", group="output")
    verbose: int = setting(1, "Keras progress output: 0 silent, 1 bar, 2 one line per epoch",
                           choices=(0, 1, 2), check=at_least(0, maximum=2), group="output")
    report: Path | None = setting(None, "also write the training report (with the per-epoch "
                                  "history) as JSON to this file", group="output")
    log_dir: Path | None = setting(
        None, "where the TensorBoard logs and history.csv go (default RUN_DIR/logs; view with "
        "tensorboard --logdir runs/)", group="output")
    no_log: bool = setting(False, "write no TensorBoard logs and no history.csv", group="output")
    run_dir: Path | None = setting(
        None, "where checkpoints go; by default runs/<app>/<hash of the settings>, so the same "
        "command resumes an interrupted run", group="runs, checkpoints and distribution")
    fresh: bool = setting(False, "ignore any checkpoint of an interrupted run and start over",
                          group="runs, checkpoints and distribution")
    checkpoint_every: int = setting(50, "back up the training state every STEPS batches",
                                    check=at_least(1), metavar="STEPS",
                                    group="runs, checkpoints and distribution")
    strategy: str = setting("default", "tf.distribute strategy: default (one device; the default), "
                            "mirrored (all local GPUs) or multi-worker (every worker in TF_CONFIG)",
                            choices=tuple(sorted(STRATEGIES)), show_default=False,
                            group="runs, checkpoints and distribution")

    def check(self) -> None:
        super().check()  # the settings classes an app's config also derives from check theirs
        if self.backend != "tensorflow" and self.strategy != "default":
            raise ConfigError(["backend", "strategy"], "a tf.distribute strategy distributes "
                              "TensorFlow's fit only; use --strategy default with another backend")


@dataclasses.dataclass(frozen=True)
class ExportConfig(Config):
    """The settings of every command that runs an export (evaluate, predict, explain)."""

    model: Path | None = setting(
        None, "an export folder, a folder of numbered versions (the newest is used), or a "
        "model.tflite or model.onnx that `gru-suite export` wrote; default saved_models/APP",
        check=ExistingPath())


# `gru-suite export --format`: the file each format writes into the export's version folder.
FORMAT_FILES = {"litert": "model.tflite", "onnx": "model.onnx"}


@dataclasses.dataclass(frozen=True)
class FormatConfig(ExportConfig):
    """`gru-suite export APP`: an export in another format, beside it."""

    format: str = setting(
        "litert", "litert: model.tflite, LiteRT's built-in ops only; onnx: model.onnx, each GRU "
        "as ONNX's native GRU op (translation and chatbot: the encoder, and the decoder step in "
        "model.decode_step.tflite or .onnx)", choices=tuple(FORMAT_FILES))
    quantize: str = setting(
        "none", "dynamic: weights stored as int8 and activations quantized as the file runs "
        "(model.int8.tflite or model.int8.onnx); none: float32", choices=("none", "dynamic"))
