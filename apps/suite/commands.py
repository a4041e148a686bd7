"""`reproduce` (every app end to end) and `compare` (GRU vs LSTM vs SimpleRNN)."""

from __future__ import annotations

import argparse
import csv
import io
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from apps import cli
from apps.common.errors import InputError
from apps.common.export import DEFAULT_ROOT
from apps.common.training import TrainReport
from apps.registry import REGISTRY, Command, register

# What the notes say about each cell, printed beside the measurements.
CELL_FACTS = {
    "gru": {"layer": "gru_core.GRU", "gates": "2 (update, reset)", "memory cell": "no"},
    "lstm": {"layer": "keras LSTM", "gates": "3 (input, forget, output)", "memory cell": "yes"},
    "rnn": {"layer": "keras SimpleRNN", "gates": "0", "memory cell": "no"},
}


def _train_commands() -> dict[str, Command]:
    return REGISTRY.app_commands.get("train", {})


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


def _configure_reproduce(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--apps", nargs="+", metavar="APP", default=None,
                        help="apps to run (default: all registered)")
    parser.add_argument("--quick", action="store_true",
                        help="a short training per app: a few minutes for the whole suite")
    parser.add_argument("--export-dir", type=Path, default=DEFAULT_ROOT)
    parser.add_argument("--format", choices=("markdown", "csv", "json"), default="markdown")


def _run_reproduce(args: argparse.Namespace) -> list[dict]:
    commands = _train_commands()
    apps = args.apps or sorted(commands)
    unknown = sorted(set(apps) - set(commands))
    if unknown:
        raise InputError(f"unknown app(s) {', '.join(unknown)}; registered: {', '.join(sorted(commands))}")
    rows = []
    for index, app in enumerate(apps, 1):
        command = commands[app]
        print(f"[{index}/{len(apps)}] {app}: training on its sample data", flush=True)
        # Outside a terminal a progress bar is a wall of carriage returns: one line per epoch.
        verbosity = "1" if sys.stdout.isatty() else "2"
        argv = ["train", app, "--export-dir", str(args.export_dir), "--verbose", verbosity]
        if args.quick:
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
    print(format_table(rows, args.format))
    return rows


def _configure_compare(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("app", help="the app to train three times")
    parser.add_argument("--seeds", type=int, default=1, help="repeat with seeds 0..K-1 (mean ± spread)")
    parser.add_argument("--cells", nargs="+", default=list(CELL_FACTS), choices=list(CELL_FACTS))
    parser.add_argument("--format", choices=("markdown", "csv", "json"), default="markdown")
    parser.add_argument("--train-args", default="", metavar="'ARGS'",
                        help="arguments for `gru-suite train APP`, quoted as one string "
                             "(for example --train-args '--epochs 2 --units 16')")


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
    if args.app not in _train_commands():
        raise InputError(f"unknown app {args.app!r}; registered: {', '.join(sorted(_train_commands()))}")
    if args.seeds < 1:
        raise InputError(f"--seeds must be at least 1, got {args.seeds}")
    train_args = shlex.split(args.train_args)
    rows = []
    for cell in args.cells:
        reports = []
        for seed in range(args.seeds):
            print(f"compare {args.app}: cell={cell} seed={seed}", file=sys.stderr, flush=True)
            reports.append(_train_in_subprocess(args.app, cell, seed, train_args))
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
    print(format_table(rows, args.format))
    return rows


register(Command("reproduce", None, "train, export, reload and run every app on its sample data",
                 _configure_reproduce, _run_reproduce))
register(Command("compare", None, "train an app with GRU, LSTM and SimpleRNN and compare them",
                 _configure_compare, _run_compare))
