"""Fault tolerance end to end: a training killed with SIGKILL resumes from its backup."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time

from apps.common.export import existing_versions


def test_a_training_killed_mid_epoch_resumes_from_its_last_checkpoint(tmp_path):
    run_dir = tmp_path / "run"
    models = tmp_path / "models"
    argv = [
        sys.executable, "-m", "apps.cli", "train", "sentiment", "--limit", "1200",
        "--epochs", "3", "--batch-size", "16", "--units", "8", "--embedding-dim", "16",
        "--checkpoint-every", "5", "--run-dir", str(run_dir), "--export-dir", str(models),
        "--verbose", "2",
    ]
    metadata = run_dir / "backup" / "training_metadata.json"
    first = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    backed_up_epoch = 0
    try:
        # Kill it once a backup was taken inside the second epoch.
        while backed_up_epoch < 1:
            assert first.poll() is None, "the training ended before it could be killed"
            assert time.time() < deadline, "no backup inside the second epoch within 5 minutes"
            time.sleep(0.2)
            try:
                backed_up_epoch = json.loads(metadata.read_text())["epoch"]
            except (FileNotFoundError, json.JSONDecodeError):
                continue
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert existing_versions(models / "sentiment") == []

    second = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    epochs_run = [int(n) for n in re.findall(r"Epoch (\d+)/3", second.stdout)]
    assert epochs_run and epochs_run[0] == backed_up_epoch + 1, second.stdout[-2000:]
    assert epochs_run[-1] == 3
    assert existing_versions(models / "sentiment") == [1]
    assert not (run_dir / "backup").exists(), "the backup outlived a completed training"

    predicted = subprocess.run(
        [sys.executable, "-m", "apps.cli", "predict", "sentiment", "--model", str(models / "sentiment"),
         "not bad at all"],
        capture_output=True, text=True, timeout=300,
    )
    assert predicted.returncode == 0, predicted.stderr[-2000:]
    assert re.match(r"(positive|negative)\t[01]\.\d{4}\tnot bad at all", predicted.stdout)
