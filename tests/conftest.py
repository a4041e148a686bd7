"""Shared test helpers.

The apps are imported inside the fixtures that use them: the layer's tests
(`tests/test_gru_core.py`) also run on Keras's JAX and torch backends, where
TensorFlow need not be installed.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import pytest
from filelock import FileLock


@pytest.fixture
def rejected(capsys):
    """`rejected(argv)`: runs the CLI, asserts that argparse refused it (status 2); returns stderr."""

    from apps import cli

    def run(argv: list[str]) -> str:
        capsys.readouterr()
        with pytest.raises(SystemExit) as exit_info:
            cli.run(argv)
        assert exit_info.value.code == 2
        return capsys.readouterr().err

    return run


@dataclasses.dataclass(frozen=True)
class SmokeExport:
    path: Path  # the version folder, saved_models-style: <models>/<app>/1
    value: float  # the held-out figure training reported
    log_dir: Path  # its TensorBoard logs and history.csv
    history: dict[str, list[float]]  # the per-epoch history of its --report JSON


@pytest.fixture(scope="session")
def smoke_exports(tmp_path_factory, worker_id) -> dict[str, SmokeExport]:
    """Every registered app trained for seconds (its `smoke_args`) and exported, once per test run.

    The xdist workers share it: the first to ask trains under a file lock and
    writes what it made; the others wait for the lock and read that. Tests
    read the exports; one that changes a models folder works on a copy.
    """
    from apps import cli
    from apps.common.running import registered_app
    from apps.registry import REGISTRY, load_app_packages

    shared = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        shared = shared.parent
    record = shared / "smoke_exports.json"
    with FileLock(str(shared / "smoke_exports.lock")):
        if not record.exists():
            load_app_packages()
            models = shared / "smoke_models"
            made = {}
            cwd = Path.cwd()
            os.chdir(shared)  # training's run folders go there too
            try:
                for name in REGISTRY.apps():
                    log_dir, report_file = shared / "logs" / name, shared / "reports" / f"{name}.json"
                    report = cli.run(["train", name, *registered_app(name).smoke_args, "--verbose", "0",
                                      "--export-dir", str(models), "--log-dir", str(log_dir),
                                      "--report", str(report_file)])
                    made[name] = {"path": report.export_path, "value": report.value, "log_dir": str(log_dir),
                                  "history": json.loads(report_file.read_text())["history"]}
            finally:
                os.chdir(cwd)
            record.write_text(json.dumps(made))
    return {
        name: SmokeExport(Path(item["path"]), item["value"], Path(item["log_dir"]), item["history"])
        for name, item in json.loads(record.read_text()).items()
    }
