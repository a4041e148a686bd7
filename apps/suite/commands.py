"""`reproduce` (every app end to end), `compare` (GRU vs LSTM vs SimpleRNN) and `tune` (KerasTuner)."""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from apps import cli
from apps.common.config import (
    Config,
    Names,
    Text,
    arguments_configurer,
    at_least,
    from_arguments,
    positive,
    setting,
)
from apps.common.errors import InputError
from apps.common.export import DEFAULT_ROOT
from apps.common.running import registered_app
from apps.common.settings import SEEDS
from apps.common.training import TrainReport, format_table
from apps.registry import REGISTRY, Command, register
from apps.suite.tuning import TrialResult, train_command, trials_table, tune

# What the notes say about each cell, printed beside the measurements.
CELL_FACTS = {
    "gru": {"layer": "gru_core.GRU", "gates": "2 (update, reset)", "memory cell": "no"},
    "lstm": {"layer": "keras LSTM", "gates": "3 (input, forget, output)", "memory cell": "yes"},
    "rnn": {"layer": "keras SimpleRNN", "gates": "0", "memory cell": "no"},
}


def _train_commands() -> dict[str, Command]:
    return REGISTRY.app_commands.get("train", {})


FORMATS = ("markdown", "csv", "json")


@dataclasses.dataclass(frozen=True)
class ReproduceConfig(Config):
    apps: tuple[str, ...] = setting((), "apps to run, comma separated (default: all registered)",
                                    check=Names(), metavar="APP,APP")
    quick: bool = setting(False, "a short training per app: a few minutes for the whole suite")
    export_dir: Path = setting(DEFAULT_ROOT, "root of the versioned exports")
    format: str = setting("markdown", "table format", choices=FORMATS)


def _run_reproduce(args: argparse.Namespace) -> list[dict]:
    config = from_arguments(ReproduceConfig, args)
    commands = _train_commands()
    apps = config.apps or sorted(commands)
    unknown = sorted(set(apps) - set(commands))
    if unknown:
        raise InputError(f"unknown app(s) {', '.join(unknown)}; registered: {', '.join(sorted(commands))}")
    rows = []
    for index, app in enumerate(apps, 1):
        command = commands[app]
        print(f"[{index}/{len(apps)}] {app}: training on its sample data", flush=True)
        # Outside a terminal a progress bar is a wall of carriage returns: one line per epoch.
        verbosity = "1" if sys.stdout.isatty() else "2"
        argv = ["train", app, "--export-dir", str(config.export_dir), "--verbose", verbosity]
        if config.quick:
            argv += list(command.quick_args)
        report: TrainReport = cli.run(argv)
        check = command.demo(report.export_path) if command.demo else "(no demo)"
        print(f"[{index}/{len(apps)}] {app}: reloaded {report.export_path}: {check}", flush=True)
        rows.append({
            "app": app,
            "data": report.data,
            "metric": report.metric,
            "value": f"{report.value:.4f}",
            "training time (s)": f"{report.train_seconds:.1f}",
            "parameters": report.parameters,
            "export": report.export_path,
            "reloaded export says": check,
        })
    print(format_table(rows, config.format))
    return rows


@dataclasses.dataclass(frozen=True)
class CompareConfig(Config):
    app: str = setting("", "the app to train three times", positional=True, check=Text(True),
                       metavar="APP")
    seeds: int = setting(1, "repeat with seeds 0..K-1 (mean ± spread)", check=at_least(1, maximum=100))
    cells: tuple[str, ...] = setting(tuple(CELL_FACTS), "cells to compare, comma separated",
                                     check=Names(tuple(CELL_FACTS)), metavar="CELL,CELL")
    format: str = setting("markdown", "table format", choices=FORMATS)
    train_args: str = setting("", "arguments for `gru-suite train APP`, quoted as one string "
                              "(for example --train-args '--epochs 2 --units 16')", metavar="'ARGS'")


def _train_in_subprocess(app: str, cell: str, seed: int, train_args: list[str]) -> TrainReport:
    """One training in its own process, so that its peak memory is its own."""
    with tempfile.TemporaryDirectory() as scratch:
        report_path = Path(scratch) / "report.json"
        argv = [sys.executable, "-m", "apps.cli", "train", app, "--cell", cell, "--seed", str(seed),
                "--no-export", "--verbose", "0", "--run-dir", str(Path(scratch) / "run"),
                "--report", str(report_path), *train_args]
        result = subprocess.run(argv, capture_output=True, text=True)
        if result.returncode != 0 or not report_path.exists():
            raise RuntimeError(
                f"training {app} with cell={cell} failed (exit {result.returncode}):\n{result.stderr[-3000:]}"
            )
        return TrainReport(**json.loads(report_path.read_text()))


def _mean_spread(values: list[float], digits: int) -> str:
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.mean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def _run_compare(args: argparse.Namespace) -> list[dict]:
    config = from_arguments(CompareConfig, args)
    if config.app not in _train_commands():
        raise InputError(f"unknown app {config.app!r}; registered: {', '.join(sorted(_train_commands()))}")
    try:
        train_args = shlex.split(config.train_args)
    except ValueError as error:
        raise InputError(f"--train-args: {error}") from None
    rows = []
    for cell in config.cells:
        reports = []
        for seed in range(config.seeds):
            print(f"compare {config.app}: cell={cell} seed={seed}", file=sys.stderr, flush=True)
            reports.append(_train_in_subprocess(config.app, cell, seed, train_args))
        first = reports[0]
        rows.append({
            **CELL_FACTS[cell],
            "recurrent parameters": first.recurrent_parameters,
            "all parameters": first.parameters,
            "time per epoch (s)": _mean_spread([r.train_seconds / max(r.epochs, 1) for r in reports], 2),
            "peak memory (MB)": _mean_spread([r.peak_memory_mb or 0.0 for r in reports], 0),
            first.metric: _mean_spread([r.value for r in reports], 4),
            "seeds": len(reports),
        })
    print(format_table(rows, config.format))
    return rows


@dataclasses.dataclass(frozen=True)
class TuneConfig(Config):
    app: str = setting("", "the app to tune", positional=True, check=Text(True), metavar="APP")
    max_trials: int = setting(10, "trials at most (the first runs the starting settings)",
                              check=at_least(1, maximum=10_000))
    minutes: float | None = setting(None, "start no trial after this many minutes", check=positive())
    train_args: str = setting("", "the settings the search starts from, as `gru-suite train APP` "
                              "arguments quoted as one string (for example --train-args '--epochs 3')",
                              metavar="'ARGS'")
    directory: Path = setting(Path("runs") / "tune", "where the trials, their checkpoints and "
                              "TensorBoard logs (HParams dashboard) go, in DIRECTORY/APP/")
    seed: int = setting(0, "seed of the random search", check=SEEDS)
    format: str = setting("markdown", "table format", choices=FORMATS)


def _run_tune(args: argparse.Namespace) -> list[TrialResult]:
    config = from_arguments(TuneConfig, args)
    if config.app not in REGISTRY.app_objects:
        raise InputError(f"unknown app {config.app!r}; registered: {', '.join(REGISTRY.apps())}")
    app = registered_app(config.app)
    try:
        train_args = shlex.split(config.train_args)
    except ValueError as error:
        raise InputError(f"--train-args: {error}") from None
    # Parsed by `gru-suite train APP` itself, so a bad one is refused in its one line.
    base = from_arguments(app.Train, cli.build_parser().parse_args(["train", app.name, *train_args]))
    directory = Path(config.directory)
    results = tune(app, base, config.max_trials, config.minutes, directory, config.seed)
    print(format_table(trials_table(results), config.format))
    first, best = results[0], min(results, key=lambda result: result.val_loss)
    print(f"\nstarting settings (trial {first.trial_id}): best val_loss {first.val_loss:.4f}; "
          f"best trial ({best.trial_id}): {best.val_loss:.4f}")
    print(f"reproduce the best trial with:\n  {train_command(app, train_args, best.values)}")
    print(f"TensorBoard (HParams): tensorboard --logdir {directory / app.name / 'logs'}")
    return results


register(Command("reproduce", None, "train, export, reload and run every app on its sample data",
                 arguments_configurer(ReproduceConfig), _run_reproduce))
register(Command("compare", None, "train an app with GRU, LSTM and SimpleRNN and compare them",
                 arguments_configurer(CompareConfig), _run_compare))
register(Command("tune", None, "search an app's settings with KerasTuner (random search) on its validation loss",
                 arguments_configurer(TuneConfig), _run_tune))
