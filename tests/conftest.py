"""Shared test helpers.

The apps are imported inside the fixtures that use them: the layer's tests
(`tests/test_gru_core.py`) also run on Keras's JAX and torch backends, where
TensorFlow need not be installed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock
from hypothesis import HealthCheck, settings

# Property-based tests (test_hostile_*): `ci`, the default, keeps them within the suite's time;
# `pytest --hypothesis-profile soak` runs many more examples. Every example's inputs are new
# (no deadline: a model call's time varies with the load).
settings.register_profile("ci", max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("soak", max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")


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


# Exports beyond each app's tiny one, so that every kind of signature has one: the streaming
# word recogniser's and transcriber's `stream` and `initial_state`, the hybrid chatbot's `rank`.
SMOKE_VARIANTS = {
    "speech_streaming": ("speech", ("--streaming",)),
    "transcriber_streaming": ("transcriber", ("--streaming",)),
    "chatbot_hybrid": ("chatbot", ("--mode", "hybrid")),
}


def _trained_once(tmp_path_factory, worker_id: str, folder: str, jobs: dict[str, tuple[str, tuple[str, ...]]],
                  folder_each: bool) -> dict[str, SmokeExport]:
    """Each of `jobs` (name -> app, options after its `smoke_args`) trained for seconds and exported
    to `<folder>/<app>/1`, or with `folder_each` to `<folder>/<name>/<app>/1`, once per test run.

    The xdist workers share them and share the work: each job has its own file lock, under which
    the first worker to reach it trains and writes a record that the others read; the second
    worker takes the jobs in reverse order, so both train at once. Tests read the exports; one
    that changes a models folder works on a copy.
    """
    from apps import cli
    from apps.common.running import registered_app
    from apps.registry import load_app_packages

    shared = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        shared = shared.parent
    load_app_packages()
    names = list(jobs) if worker_id in ("master", "gw0") else list(jobs)[::-1]
    made = {}
    for name in names:
        record = shared / "smoke_records" / f"{name}.json"
        with FileLock(str(shared / f"smoke_{name}.lock")):
            if not record.exists():
                app, options = jobs[name]
                log_dir, report_file = shared / "logs" / name, shared / "reports" / f"{name}.json"
                cwd = Path.cwd()
                os.chdir(shared)  # training's run folders go there too
                try:
                    report = cli.run(["train", app, *registered_app(app).smoke_args, *options, "--verbose", "0",
                                      "--export-dir", str(shared / folder / (name if folder_each else "")),
                                      "--log-dir", str(log_dir),
                                      "--report", str(report_file)])
                finally:
                    os.chdir(cwd)
                record.parent.mkdir(exist_ok=True)
                record.write_text(json.dumps({"path": report.export_path, "value": report.value,
                                              "log_dir": str(log_dir),
                                              "history": json.loads(report_file.read_text())["history"]}))
        item = json.loads(record.read_text())
        made[name] = SmokeExport(Path(item["path"]), item["value"], Path(item["log_dir"]), item["history"])
    return {name: made[name] for name in jobs}


@pytest.fixture(scope="session")
def smoke_exports(tmp_path_factory, worker_id) -> dict[str, SmokeExport]:
    """Every registered app trained for seconds (its `smoke_args`) and exported (`_trained_once`):
    `<models>/<app>/1`, one models folder for all of them."""
    from apps.registry import REGISTRY, load_app_packages

    load_app_packages()
    return _trained_once(tmp_path_factory, worker_id, "smoke_models", {name: (name, ()) for name in REGISTRY.apps()},
                         folder_each=False)


@pytest.fixture(scope="session")
def smoke_variants(tmp_path_factory, worker_id) -> dict[str, SmokeExport]:
    """The `SMOKE_VARIANTS`, trained as `smoke_exports` are."""
    return _trained_once(tmp_path_factory, worker_id, "smoke_variants", SMOKE_VARIANTS, folder_each=True)


class Server:
    """A `gru-suite serve` process on 127.0.0.1 and an HTTP client of it."""

    def __init__(self, url: str, log: Path, process: subprocess.Popen):
        self.url, self.log, self.process = url, log, process
        import httpx

        self.client = httpx.Client(base_url=url, timeout=60)

    def get(self, path: str):
        return self.client.get(path)

    def post(self, path: str, body: Any):
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        return self.client.post(path, content=content, headers={"content-type": "application/json"})

    def version(self, model: str) -> str | None:
        answer = self.get(f"/v1/models/{model}")
        return answer.json()["model_version_status"][0]["version"] if answer.status_code == 200 else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def running_server(models: Path, log: Path, expected: list[str], *options: str) -> Iterator[Server]:
    """`gru-suite serve --models models *options` on a free port, once it serves version 1 of each
    of `expected`; stopped on exit. Its output goes to `log`."""
    import httpx

    port = free_port()
    with log.open("w") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "apps.cli", "serve", "--models", str(models), "--port", str(port), *options],
            stdout=output, stderr=subprocess.STDOUT, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        )
    running = Server(f"http://127.0.0.1:{port}", log, process)
    deadline = time.monotonic() + 300
    try:
        while True:
            assert process.poll() is None, f"the server stopped:\n{log.read_text()[-3000:]}"
            try:
                if all(running.version(name) == "1" for name in expected):
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"the server did not start:\n{log.read_text()[-3000:]}"
            time.sleep(1)
        yield running
    finally:
        running.client.close()
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
