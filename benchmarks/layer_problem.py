"""The problem both layer benchmarks time (`layer_speed.py`, `backend_speed.py`): its flags and defaults."""

from __future__ import annotations

import argparse

SIZES = ("batch", "steps", "features", "units", "repeats")


def add_problem_arguments(parser: argparse.ArgumentParser) -> None:
    """`--batch --steps --features --units` of the timed layer, and `--repeats` (calls timed)."""
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--features", type=int, default=128)
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=20)


def check_problem_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuses, with argparse's one-line error, a size that is not positive."""
    for flag in SIZES:
        if getattr(args, flag) < 1:
            parser.error(f"--{flag} must be at least 1")
