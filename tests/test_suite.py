"""`gru-suite reproduce` and `gru-suite compare` end to end on the sentiment app."""

from __future__ import annotations

import pytest
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the ops the export uses)

from apps import cli
from apps.registry import load_app_packages

load_app_packages()


def test_reproduce_quick_trains_exports_and_reloads_sentiment(tmp_path, capsys):
    rows = cli.run(["reproduce", "--quick", "--apps", "sentiment", "--export-dir", str(tmp_path)])
    assert [row["app"] for row in rows] == ["sentiment"]
    row = rows[0]
    assert row["export"] == str(tmp_path / "sentiment" / "1")
    assert "not bad at all" in row["reloaded export says"]
    served = tf.saved_model.load(row["export"]).signatures["serving_default"](
        text=tf.constant(["a fine film", ""])
    )
    assert served["probability"].shape == (2,)
    assert set(served["label"].numpy()) <= {b"negative", b"positive"}
    table = capsys.readouterr().out
    assert "| sentiment |" in table and "held-out accuracy" in table


def test_reproduce_refuses_an_unknown_app(tmp_path):
    from apps.common.errors import InputError

    with pytest.raises(InputError, match="unknown app"):
        cli.run(["reproduce", "--apps", "nonexistent", "--export-dir", str(tmp_path)])


def test_compare_gives_three_rows_with_the_known_parameter_counts(capsys):
    units, embedding = 4, 8
    rows = cli.run([
        "compare", "sentiment", "--format", "json",
        "--train-args", f"--limit 200 --epochs 1 --units {units} --embedding-dim {embedding}",
    ])
    assert [row["layer"] for row in rows] == ["gru_core.GRU", "keras LSTM", "keras SimpleRNN"]
    # One direction of a simple RNN: input kernel, recurrent kernel and bias.
    simple = units * embedding + units * units + units
    directions = 2  # the sentiment model is bidirectional
    expected = {"gru_core.GRU": 3 * simple, "keras LSTM": 4 * simple, "keras SimpleRNN": simple}
    for row in rows:
        assert row["recurrent parameters"] == directions * expected[row["layer"]]
        assert 0.0 <= float(row["held-out accuracy"]) <= 1.0
        assert float(row["time per epoch (s)"]) > 0
        assert float(row["peak memory (MB)"]) > 0
    assert rows[0]["gates"].startswith("2") and rows[1]["memory cell"] == "yes"
    assert '"layer": "keras LSTM"' in capsys.readouterr().out
