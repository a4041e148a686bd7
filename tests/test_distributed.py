"""Training across workers: two processes on 127.0.0.1 under MultiWorkerMirroredStrategy."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest

from apps.cli import run
from apps.common.errors import InputError
from apps.common.export import existing_versions
from apps.registry import load_app_packages

load_app_packages()


def _free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def test_two_workers_train_together_and_end_with_identical_weights(tmp_path):
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    processes = []
    for index in range(2):
        environment = dict(os.environ, TF_CONFIG=json.dumps({
            "cluster": {"worker": workers}, "task": {"type": "worker", "index": index},
        }))
        argv = [
            sys.executable, "-m", "apps.cli", "train", "sentiment", "--strategy", "multi-worker",
            "--limit", "256", "--epochs", "2", "--batch-size", "16", "--units", "8",
            "--embedding-dim", "16", "--checkpoint-every", "4", "--verbose", "2",
            # Both workers share the run folder, as on shared storage.
            "--run-dir", str(tmp_path / "run"),
            "--export-dir", str(tmp_path / f"models-{index}"),
            "--report", str(tmp_path / f"report-{index}.json"),
        ]
        processes.append(subprocess.Popen(
            argv, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        ))
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=400))
    finally:
        for process in processes:
            process.kill()
    for process, (stdout, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]

    reports = [json.loads((tmp_path / f"report-{index}.json").read_text()) for index in range(2)]
    assert [report["extra"]["distributed"] for report in reports] == ["worker 0 of 2", "worker 1 of 2"]
    assert reports[0]["weights_sha256"] == reports[1]["weights_sha256"]
    assert reports[0]["epochs"] == 2
    # The chief alone prints progress and exports; the backups are gone.
    assert "Epoch 2/2" in outputs[0][0] and "Epoch" not in outputs[1][0]
    assert existing_versions(tmp_path / "models-0" / "sentiment") == [1]
    assert existing_versions(tmp_path / "models-1" / "sentiment") == []
    # The backups are gone; the logs stay, and only the chief wrote them (one history).
    assert sorted(path.name for path in (tmp_path / "run").iterdir()) == ["logs"]
    assert (tmp_path / "run" / "logs" / "history.csv").read_text().count("\n") == 3


@pytest.mark.parametrize("tf_config, message", [
    (None, "needs TF_CONFIG"),
    ("{not json", "not valid JSON"),
    ('{"cluster": {}, "task": {"type": "worker", "index": 0}}', '"worker": [...]'),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}}', '"task"'),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": 3}}',
     "index 3 is outside the 1 workers"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"type": "worker", "index": "0"}}',
     "index '0' is not a non-negative integer"),
])
def test_a_bad_tf_config_is_named_before_any_training(monkeypatch, tf_config, message):
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("]", r"\]")):
        run(["train", "sentiment", "--strategy", "multi-worker", "--no-export"])


def test_mirrored_strategy_trains_and_exports(tmp_path):
    report = run([
        "train", "sentiment", "--strategy", "mirrored", "--limit", "200", "--epochs", "1",
        "--batch-size", "16", "--units", "8", "--embedding-dim", "16", "--verbose", "0",
        "--run-dir", str(tmp_path / "run"), "--export-dir", str(tmp_path / "models"),
    ])
    assert report.export_path == str(tmp_path / "models" / "sentiment" / "1")
    assert "distributed" not in report.extra
    assert len(report.weights_sha256) == 64
