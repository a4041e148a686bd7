"""What every training records: TensorBoard event files, history.csv, the gates; early stopping;
the conventional CLI flags (--version, no abbreviations) and the new flags' one-line refusals."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from apps import cli
from apps.common.app import Fitting
from apps.common.monitoring import HISTORY_FILE, first_gru, gru_inputs
from apps.common.settings import TrainConfig
from apps.common.training import fit
from apps.registry import REGISTRY, load_app_packages
from gru_core import GRU


def event_tags(folder: Path) -> set[str]:
    """Every summary tag in the event files of `folder`, read back with TensorFlow's iterator."""
    tags = set()
    for events in folder.glob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(events)):
            tags |= {value.tag for value in event.summary.value}
    return tags


def test_every_app_logs_scalars_gates_weights_and_history(smoke_exports):
    load_app_packages()
    assert set(smoke_exports) == set(REGISTRY.app_objects)
    for name, export in smoke_exports.items():
        logs = export.log_dir
        train, validation = event_tags(logs / "train"), event_tags(logs / "validation")
        assert {"epoch_loss", "epoch_learning_rate", "epoch_update_gate", "epoch_reset_gate"} <= train, name
        assert "epoch_loss" in validation, name
        assert any("gru" in tag and "kernel" in tag for tag in event_tags(logs / "weights")), name
        with open(logs / HISTORY_FILE, newline="") as handle:
            rows = list(csv.DictReader(handle))
        assert rows and {"loss", "val_loss", "update_gate", "reset_gate", "learning_rate",
                         "epoch_seconds"} <= set(rows[0]), name
        assert all(float(row["epoch_seconds"]) > 0 for row in rows), name
        assert len(export.history["loss"]) == len(rows), name
        for gate in ("update_gate", "reset_gate"):
            assert all(0.0 < value < 1.0 for value in export.history[gate]), (name, gate)


def test_the_gate_probe_sees_what_the_first_gru_receives_with_its_mask():
    inputs = keras.Input((None,), dtype="int32")
    vectors = keras.layers.Embedding(20, 4, mask_zero=True)(inputs)
    outputs = keras.layers.Bidirectional(GRU(3))(vectors)
    model = keras.Model(inputs, outputs)
    ids = np.array([[3, 4, 5, 0, 0], [6, 7, 0, 0, 0]], np.int32)
    layer = first_gru(model)
    sequences, mask = gru_inputs(model, layer, ids)
    np.testing.assert_allclose(sequences, model.layers[1](ids), atol=1e-6)
    np.testing.assert_array_equal(np.asarray(mask), ids != 0)
    assert layer.call.__func__ is GRU.call  # the recording wrapper is gone


def test_patience_stops_on_a_plateau_and_restores_the_best_weights(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")  # nothing changes: a plateau
    x, y = np.ones((8, 4), np.float32), np.zeros((8, 1), np.float32)
    history = fit(model, x, y=y, epochs=20, validation_data=(x, y), verbose=0, patience=2, batch_size=4)
    assert len(history.epoch) == 3  # the first epoch, then two without improvement

    # A model whose validation loss rises after the first epoch ends with that epoch's weights.
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, use_bias=False, kernel_initializer="zeros")])
    model.compile(optimizer=keras.optimizers.SGD(0.5), loss="mse")
    x_train, y_train = np.ones((4, 1), np.float32), 2 * np.ones((4, 1), np.float32)
    x_val, y_val = np.ones((4, 1), np.float32), np.ones((4, 1), np.float32)
    recorded = []
    remember = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: recorded.append((logs["val_loss"], model.get_weights()[0].copy())))
    fit(model, x_train, y=y_train, epochs=6, validation_data=(x_val, y_val), verbose=0, patience=2,
        batch_size=4, callbacks=[remember], log_dir=tmp_path)
    best_loss, best_weights = min(recorded, key=lambda item: item[0])
    np.testing.assert_allclose(model.get_weights()[0], best_weights)
    assert len(recorded) < 6 and (tmp_path / HISTORY_FILE).is_file()


def test_version_abbreviations_and_the_new_flags(rejected, capsys):
    load_app_packages()
    version = subprocess.run([sys.executable, "-m", "apps.cli", "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("gru-suite ")
    assert "unrecognized arguments: --epo" in rejected(["train", "sentiment", "--epo", "1"])
    assert "--patience" in rejected(["train", "stock", "--patience", "0"])
    assert "--jit-compile" in rejected(["train", "speech", "--jit-compile", "maybe"])
    assert "--mixed-precision" in rejected(["train", "transcriber", "--mixed-precision", "float8"])
    assert "--log-dir" in rejected(["train", "chatbot", "--log-dir"])
    assert "--validation-fraction" in rejected(["train", "sentiment", "--validation-fraction", "1.5"])
    for message in (rejected(["train", "stock", "--patience", "x"]), rejected(["train", "translation", "--no-log", "1"])):
        assert len(message.strip().splitlines()) == 1


@pytest.mark.parametrize("app", ["sentiment", "stock"])
def test_help_groups_are_the_same_across_apps(app, capsys):
    load_app_packages()
    with pytest.raises(SystemExit):
        cli.run(["train", app, "--help"])
    text = capsys.readouterr().out
    for group in ("data", "model", "training", "output", "runs, checkpoints and distribution"):
        assert f"\n{group}" in text, (app, group)
    training = text.split("\ntraining")[1].split("\noutput")[0]
    assert "--learning-rate" in training and "--patience" in training and "--export-dir" not in training


def test_a_fittings_own_callbacks_join_every_fit_and_its_history_is_kept():
    seen = []
    fitting = Fitting(TrainConfig(verbose=0, no_log=True),
                      callbacks=[keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: seen.append(epoch))])
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.zeros((4, 2), np.float32)
    history = fitting.fit(model, x, y=np.zeros((4, 1), np.float32), epochs=3, batch_size=2)
    assert seen == [0, 1, 2] and fitting.history is history and len(history.history["loss"]) == 3
