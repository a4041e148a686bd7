"""Shared test helpers."""

from __future__ import annotations

import os

# `pytest -n 2` runs two workers on this 2-core machine, and many tests start
# TensorFlow subprocesses too: one thread per op each keeps them from fighting
# over the cores. Set before TensorFlow creates its thread pools; subprocesses
# inherit it.
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")

import pytest  # noqa: E402

from apps import cli


@pytest.fixture
def rejected(capsys):
    """`rejected(argv)`: runs the CLI, asserts that argparse refused it (status 2); returns stderr."""

    def run(argv: list[str]) -> str:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            cli.run(argv)
        assert exit_info.value.code == 2
        return capsys.readouterr().err

    return run
