"""Tests for the sentiment app: training, export, serving raw strings, the commands."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import apps.sentiment.app  # noqa: F401  (registers the sentiment commands)
from apps import cli
from apps.common.errors import InputError
from apps.common.export import export_serving_model
from apps.common.text import TokenIds, build_vocabulary
from apps.sentiment.data import load_data
from apps.sentiment.model import (
    Preprocessor,
    build_model,
    make_serving_function,
    training_dataset,
)
from apps.sentiment.settings import SentimentTrain

AWKWARD_TEXTS = [
    "",
    "?!... ,;",
    "great " * 20000,  # 120,000 characters: truncated to --max-length tokens.
    "😀😀 🎬",
    "Фильм просто ужасный",
    "映画は素晴らしかった",
    "the plot is not bad at all",
]


def serve_in_fresh_process(model_dir, texts, cwd) -> dict:
    """Runs the export's serving_default in a Python that imports TF and tf-text only."""
    script = textwrap.dedent(
        """
        import json, sys
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  (registers the tokenizer ops)
        loaded = tf.saved_model.load(sys.argv[1])
        texts = json.loads(sys.stdin.read())
        out = loaded.signatures["serving_default"](text=tf.constant(texts, tf.string))
        assert not any(m == "apps" or m.startswith(("apps.", "gru_core")) for m in sys.modules)
        print(json.dumps({
            "probability": out["probability"].numpy().tolist(),
            "label": [label.decode() for label in out["label"].numpy()],
            "dtypes": [out["probability"].dtype.name, out["label"].dtype.name],
        }))
        """
    )
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH="")
    result = subprocess.run(
        [sys.executable, "-c", script, str(model_dir)], input=json.dumps(texts),
        capture_output=True, text=True, cwd=cwd, env=env, timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """`gru-suite train sentiment` for one epoch on a slice of the sample, exported."""
    root = tmp_path_factory.mktemp("sentiment")
    report = cli.run([
        "train", "sentiment", "--epochs", "1", "--limit", "600", "--units", "8",
        "--subword-buckets", "100",
        "--embedding-dim", "8", "--max-length", "12", "--verbose", "0",
        "--export-dir", str(root / "exports"), "--run-dir", str(root / "run"),
    ])
    return report, root


def test_train_reports_held_out_metrics_and_exports_a_version(trained):
    report, root = trained
    assert report.app == "sentiment" and report.data == "sample" and report.cell == "gru"
    assert 0.0 <= report.value <= 1.0 and 0.0 <= report.extra["held-out F1"] <= 1.0
    assert report.extra["examples"] == "540 train, 60 validation, 800 held out"
    assert report.export_path == str(root / "exports" / "sentiment" / "1")
    for name in ("saved_model.pb", "extra/model.keras", "extra/vocabulary.txt", "extra/settings.json"):
        assert (root / "exports" / "sentiment" / "1" / name).is_file(), name


def test_training_dataset_declares_the_batches_it_yields():
    # Lengths 1..40 words spread over several length buckets, most with a remainder.
    texts = [" ".join(["word"] * (1 + index % 40)) for index in range(300)]
    preprocessor = Preprocessor(TokenIds(build_vocabulary(texts)), 32)
    dataset = training_dataset(preprocessor, texts, np.zeros(len(texts)), batch_size=16)
    batches = list(dataset)
    assert int(dataset.cardinality()) == len(batches) > len(texts) // 16
    assert sum(len(labels) for _, labels in batches) == len(texts)


@pytest.mark.parametrize("subword_buckets", [0, 50])
def test_predictions_are_the_same_before_and_after_export(tmp_path, subword_buckets):
    data = load_data("sample")
    texts, labels = data.train.texts[:256], data.train.labels[:256]
    preprocessor = Preprocessor(TokenIds(build_vocabulary(texts)), 16, subword_buckets)
    config = SentimentTrain(subword_buckets=subword_buckets, units=8, embedding_dim=8, seed=0,
                            learning_rate=2e-3)
    model = build_model(preprocessor.token_ids.size, config)
    model.fit(training_dataset(preprocessor, texts, labels, batch_size=64, word_dropout=0.2),
              epochs=1, verbose=0, shuffle=False)
    serve = make_serving_function(model, preprocessor)
    probe = data.test.texts[:40] + AWKWARD_TEXTS + ["zzunseen wordzz"]
    before = serve(text=tf.constant(probe))
    # Directly through the Keras model, padded further: masking makes it equal.
    padded = {
        name: tf.pad(ids, [[0, 0], [0, 5]] + [[0, 2]] * (len(ids.shape) - 2))
        for name, ids in preprocessor(tf.constant(probe)).items()
    }
    np.testing.assert_allclose(model(padded)[:, 0], before["probability"], atol=1e-5)

    export = export_serving_model("sentiment", serve, [model, preprocessor], root=tmp_path)
    after = serve_in_fresh_process(export, probe, cwd=tmp_path)
    assert after["dtypes"] == ["float32", "string"]
    np.testing.assert_allclose(after["probability"], before["probability"].numpy(), atol=1e-5)
    assert after["label"] == [label.decode() for label in before["label"].numpy()]
    assert all(0.0 <= p <= 1.0 for p in after["probability"])


def test_export_serves_awkward_raw_strings_in_a_fresh_process(trained, tmp_path):
    report, _ = trained
    out = serve_in_fresh_process(report.export_path, AWKWARD_TEXTS, cwd=tmp_path)
    assert len(out["probability"]) == len(AWKWARD_TEXTS)
    assert all(np.isfinite(p) and 0.0 <= p <= 1.0 for p in out["probability"])
    assert set(out["label"]) <= {"negative", "positive"}
    for probability, label in zip(out["probability"], out["label"]):
        assert label == ("positive" if probability >= 0.5 else "negative")


def test_predict_command_on_arguments_and_stdin(trained, monkeypatch, capsys):
    report, _ = trained
    results = cli.run(["predict", "sentiment", "--model", report.export_path, *AWKWARD_TEXTS])
    assert [r["text"] for r in results] == AWKWARD_TEXTS
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1].startswith(results[-1]["label"] + "\t")

    monkeypatch.setattr(sys, "stdin", io.StringIO("good fun\r\nslow at first but worth it\n"))
    from_stdin = cli.run(["predict", "sentiment", "--model", str(report.export_path)])
    assert [r["text"] for r in from_stdin] == ["good fun", "slow at first but worth it"]


def test_predict_on_empty_stdin_is_an_input_error(trained, monkeypatch):
    report, _ = trained
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    with pytest.raises(InputError, match="stdin: no texts"):
        cli.run(["predict", "sentiment", "--model", report.export_path])


def test_evaluate_command_scores_the_held_out_split(trained, tmp_path):
    report, root = trained
    # The folder of versions works too: the newest version is used.
    metrics = cli.run(["evaluate", "sentiment", "--model", str(root / "exports" / "sentiment")])
    assert metrics.value == pytest.approx(report.value, abs=1e-6)

    table = tmp_path / "mine.csv"
    table.write_text("review,polarity\nnot bad at all,positive\ndull,negative\nfun,positive\n")
    metrics = cli.run(["evaluate", "sentiment", "--model", report.export_path, "--data", str(table)])
    assert set(metrics.details) == {"held-out F1", "held-out precision", "held-out recall"}


def test_explain_writes_a_gate_heatmap(trained, tmp_path, capsys):
    report, _ = trained
    output = tmp_path / "plots" / "why.png"
    result = cli.run(["explain", "sentiment", "--model", report.export_path,
                      "The plot is not bad at all, zzzunseen!", "--output", str(output)])
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result["path"] == str(output) and str(output) in capsys.readouterr().out
    assert result["tokens"][:3] == ["the", "plot", "is"] and "zzzunseen?" in result["tokens"]
    for direction in ("forward", "backward"):
        gates = result["mean_update"][direction]
        assert len(gates) == len(result["tokens"]) and all(0.0 <= z <= 1.0 for z in gates)
    assert not [p for p in output.parent.iterdir() if p.name.startswith(".partial-")]


def test_explain_without_tokens_or_without_keras_model_is_an_input_error(trained, tmp_path, rejected):
    report, _ = trained
    assert "TEXT: must be non-blank text" in rejected(
        ["explain", "sentiment", "--model", report.export_path, "   ", "--output", str(tmp_path / "x.png")])
    with pytest.raises(InputError, match="not a SavedModel folder"):
        cli.run(["explain", "sentiment", "--model", str(tmp_path), "good"])


def test_train_rejects_bad_arguments_and_data(tmp_path, rejected):
    assert "--epochs: must be an integer in [1, 100000], got '0'" in rejected(
        ["train", "sentiment", "--epochs", "0", "--no-export"])
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\ngreat,maybe\n")
    with pytest.raises(InputError, match=r"bad\.csv: line 2: column 'label' has unknown label 'maybe'"):
        cli.run(["train", "sentiment", "--data", str(bad), "--no-export"])
