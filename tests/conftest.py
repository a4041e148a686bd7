"""Shared test helpers."""

from __future__ import annotations

import pytest

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
