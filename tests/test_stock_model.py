"""Tests for the stock forecaster: no look-ahead, metrics, training, export and the CLI."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from apps import cli
from apps.common.app import Export
from apps.common.errors import InputError
from apps.common.export import METADATA_FILE
import apps.stock.app  # noqa: F401  (registers the stock commands)
from apps.stock.data import PriceSeries, sample_prices
from apps.stock.evaluation import evaluate, forecast_metrics
from apps.stock.model import MonotoneQuantiles, PinballLoss, fit_band_scale, fit_shrink
from apps.stock.serving import ExportedForecaster
from apps.stock.settings import DEFAULT_CALIBRATION
from apps.stock.windows import Normalization, chronological_split, price_windows, step_features, target_log_returns

TINY = ["--window", "8", "--units", "4", "--layers", "1", "--epochs", "2", "--verbose", "0"]


def short_sample(length: int = 300) -> PriceSeries:
    full = sample_prices()
    return dataclasses.replace(
        full, dates=full.dates[:length], close=full.close[:length],
        volume=full.volume[:length], high=full.high[:length], low=full.low[:length],
    )


def test_split_is_chronological_and_targets_stay_inside_their_split():
    split = chronological_split(300, 10, 5)
    assert split.train_end == 210 and split.val_end == 255
    assert split.train[0] == 9 and split.train[-1] + 5 < split.train_end
    assert split.validation[0] == split.train_end - 1 and split.validation[-1] + 5 < split.val_end
    assert split.test[0] == split.val_end - 1 and split.test[-1] + 5 == 299


def test_changing_future_prices_changes_no_normalization_or_earlier_window():
    series = short_sample()
    split = chronological_split(len(series), 10, 3)
    changed_close = series.close.copy()
    changed_close[split.val_end + 5:] *= 3.0  # a crash-and-rally deep in the test split
    changed_close[split.train_end + 2] *= 0.5  # and a shock in validation
    changed = dataclasses.replace(series, close=changed_close)

    before = Normalization.fit(step_features(series), series.close, split, 3)
    after = Normalization.fit(step_features(changed), changed.close, split, 3)
    for field in ("feature_mean", "feature_std", "target_scale"):
        np.testing.assert_array_equal(getattr(before, field), getattr(after, field))

    # Every window anchored before the first changed price is identical.
    earlier = np.arange(9, split.train_end + 2)
    np.testing.assert_array_equal(
        before.inputs(step_features(series), earlier, 10), after.inputs(step_features(changed), earlier, 10))
    np.testing.assert_array_equal(price_windows(series.close, earlier, 10), price_windows(changed.close, earlier, 10))
    # ... and the first window that sees the change differs (the check can fail).
    assert not np.array_equal(price_windows(series.close, [split.train_end + 2], 10),
                              price_windows(changed.close, [split.train_end + 2], 10))


def test_training_targets_never_reach_validation_prices():
    series = short_sample()
    split = chronological_split(len(series), 10, 4)
    targets = target_log_returns(series.close, split.train, 4)
    changed = series.close.copy()
    changed[split.train_end:] = 1.0
    np.testing.assert_array_equal(targets, target_log_returns(changed, split.train, 4))


def test_series_too_short_is_an_input_error():
    with pytest.raises(InputError, match="shorter than window \\+ horizon = 25"):
        chronological_split(24, 20, 5)
    with pytest.raises(InputError, match="no train examples"):
        chronological_split(30, 20, 5)


def test_metrics_and_baselines_by_hand():
    last = np.array([10.0, 10.0])
    actual = np.array([[11.0], [9.0]])
    predicted = np.array([[10.5], [10.5]])
    metrics = forecast_metrics(last, actual, predicted)
    assert metrics.rmse == pytest.approx(np.sqrt((0.25 + 2.25) / 2))
    assert metrics.mae == pytest.approx(1.0)
    assert metrics.mape == pytest.approx(100 * (0.5 / 11 + 1.5 / 9) / 2)
    assert metrics.direction == pytest.approx(0.5)

    series = PriceSeries("s", pd.bdate_range("2024-01-01", periods=6), np.array([1, 2, 3, 4, 5, 6.0]))
    result = evaluate(series, np.array([2, 3]), np.array([[4.0], [5.0]]), model_name="m", ma_window=3)
    assert result.ratio == pytest.approx(0.0)
    np.testing.assert_allclose(result.forecasts["persistence"][:, 0], [3, 4])
    np.testing.assert_allclose(result.forecasts["moving average (3)"][:, 0], [2, 3])
    assert result.metrics["persistence"].direction is None
    assert "RMSE/persist" in result.table("test").splitlines()[1]


def test_shrink_is_the_clipped_validation_slope():
    predicted = np.array([[1.0, 1.0], [2.0, -1.0]])
    np.testing.assert_allclose(fit_shrink(predicted, 0.5 * predicted), [0.5, 0.5])
    np.testing.assert_allclose(fit_shrink(predicted, -predicted), [0.01, 0.01])
    np.testing.assert_allclose(fit_shrink(predicted, 3 * predicted), [1.0, 1.0])


def test_pinball_loss_by_hand():
    levels = (0.1, 0.5, 0.9)
    y_true = np.array([[1.0], [-2.0]], np.float32)
    y_pred = np.array([[[0.0, 1.0, 3.0]], [[-1.0, 0.0, 1.0]]], np.float32)
    # errors y - f: row 1: 1, 0, -2 -> 0.1*1, 0, 0.1*2; row 2: -1, -2, -3 -> 0.9*1, 0.5*2, 0.1*3
    expected = np.array([(0.1 + 0.0 + 0.2) / 3, (0.9 + 1.0 + 0.3) / 3])
    loss = PinballLoss(levels, reduction=None)(y_true, y_pred)
    np.testing.assert_allclose(np.asarray(loss), expected, rtol=1e-6)
    assert float(PinballLoss(levels)(y_true, y_pred)) == pytest.approx(expected.mean(), rel=1e-6)


def test_quantiles_never_cross_for_random_inputs_and_weights():
    rng = np.random.default_rng(0)
    for levels in ((0.1, 0.5, 0.9), (0.05, 0.25, 0.5, 0.75, 0.95), (0.5,), (0.2, 0.5)):
        head = MonotoneQuantiles(levels)
        median = rng.normal(0, 5, (64, 3)).astype(np.float32)
        steps = rng.normal(0, 20, (64, 3, len(levels) - 1)).astype(np.float32)
        quantiles = np.asarray(head(median, steps))
        assert quantiles.shape == (64, 3, len(levels))
        np.testing.assert_array_equal(quantiles[..., levels.index(0.5)], median)
        assert np.all(np.diff(quantiles, axis=-1) >= 0)
    assert MonotoneQuantiles.from_config(MonotoneQuantiles((0.1, 0.5, 0.9)).get_config()).levels == (0.1, 0.5, 0.9)
    with pytest.raises(InputError, match="must include 0.5"):
        MonotoneQuantiles((0.1, 0.9))


def test_band_scale_is_the_validation_pinball_minimizer():
    rng = np.random.default_rng(1)
    actual = rng.normal(0, 2.0, (4000, 1))
    z = 1.2815515655446004  # the 0.9 quantile of a standard normal
    spread = np.broadcast_to(np.array([-z, 0.0, z]), (4000, 1, 3))  # a unit-variance band
    scales = fit_band_scale(np.zeros((4000, 1)), spread, actual, (0.1, 0.5, 0.9))
    np.testing.assert_allclose(scales[:, 0], [2.0, 2.0], rtol=0.1)
    flat = fit_band_scale(np.zeros((50, 1)), spread[:50], np.zeros((50, 1)), (0.1, 0.5, 0.9))
    np.testing.assert_array_equal(flat, 0.0)  # a series that never moves: no width


FRESH_PROCESS = textwrap.dedent("""
    import json, sys
    import numpy as np
    import tensorflow as tf
    assert not any(name == "apps" or name.startswith(("apps.", "gru_core")) for name in sys.modules)
    serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
    prices = np.array(json.loads(sys.argv[2]), np.float32)
    outputs = serve(prices=tf.constant(prices))
    result = {name: outputs[name].numpy().tolist() for name in ("forecast", "quantiles", "uncalibrated")}
    for name, bad in (("nan", np.nan), ("negative", -1.0)):
        broken = prices.copy()
        broken[0, 2] = bad
        try:
            serve(prices=tf.constant(broken))
            result[name] = "no error"
        except tf.errors.InvalidArgumentError as error:
            result[name] = error.message
    print(json.dumps(result))
""")


def test_train_on_sample_exports_a_model_that_serves_raw_prices_in_a_fresh_process(tmp_path):
    report = cli.run(["train", "stock", *TINY, "--horizon", "3", "--export-dir", str(tmp_path),
                      "--plot", str(tmp_path / "train.png")])
    assert report.app == "stock" and report.metric == "test RMSE / persistence"
    assert 0.5 < report.value < 2.0
    assert (tmp_path / "train.png").stat().st_size > 0
    export = tmp_path / "stock" / "1"
    assert str(export) == report.export_path
    metadata = json.loads((export / METADATA_FILE).read_text())
    assert metadata["window"] == 8 and metadata["quantiles"] == [0.1, 0.5, 0.9]
    assert metadata["calibration"] == DEFAULT_CALIBRATION.to_json()
    history = metadata["history"]
    assert history == 8 + DEFAULT_CALIBRATION.length + 3 - 1

    series = sample_prices()
    windows = np.stack([series.close[-history:], series.close[-history - 12:-12]])
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    completed = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, str(export), json.dumps(windows.tolist())],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    served = json.loads(completed.stdout.strip().splitlines()[-1])
    forecast, quantiles = np.array(served["forecast"]), np.array(served["quantiles"])
    uncalibrated = np.array(served["uncalibrated"])
    assert forecast.shape == (2, 3) and quantiles.shape == uncalibrated.shape == (2, 3, 3)
    np.testing.assert_array_equal(quantiles[..., 1], forecast)
    np.testing.assert_array_equal(uncalibrated[..., 1], forecast)
    assert np.all(np.diff(quantiles, axis=-1) > 0) and not np.allclose(quantiles, uncalibrated)
    # A forecast near the last price: returns of a few percent, not garbage.
    np.testing.assert_array_less(np.abs(np.log(forecast / windows[:, -1:])), 0.2)
    assert "must be finite" in served["nan"]
    assert "must be > 0" in served["negative"]

    # The same export through the CLI: evaluate (with its plot) and predict.
    evaluation = cli.run(["evaluate", "stock", "--model", str(tmp_path / "stock"),
                          "--plot", str(tmp_path / "eval.png")])
    assert evaluation.value == pytest.approx(report.value, rel=1e-3)
    assert (tmp_path / "eval.png").stat().st_size > 0
    predicted = cli.run(["predict", "stock", "--model", str(export)])
    assert list(predicted.columns) == ["forecast", "q0.1", "q0.9"]
    np.testing.assert_allclose(predicted["forecast"].to_numpy(), forecast[0], rtol=1e-5)
    np.testing.assert_allclose(predicted[["q0.1", "q0.9"]].to_numpy(), quantiles[0][:, [0, 2]], rtol=1e-5)
    assert list(predicted.index) == list(pd.bdate_range(series.dates[-1] + pd.offsets.BDay(1), periods=3))
    assert (predicted.index.dayofweek < 5).all()
    short = tmp_path / "short.csv"
    pd.DataFrame({"Date": series.dates[-100:].strftime("%Y-%m-%d"), "Close": series.close[-100:]}).to_csv(short)
    with pytest.raises(InputError, match=f"100 prices, the model needs the last {history} prices \\(a window of 8"):
        cli.run(["predict", "stock", "--model", str(export), "--csv", str(short)])
    loaded = tf.saved_model.load(str(export))
    with pytest.raises(InputError, match="names no levels"):
        ExportedForecaster(Export(loaded.signatures, {}, export, keep_alive=loaded))


def test_extra_features_train_but_are_not_exported(tmp_path):
    report = cli.run(["train", "stock", *TINY, "--features", "volume,range", "--export-dir", str(tmp_path)])
    assert report.export_path is None and "skipped" in report.extra["export"]
    assert not (tmp_path / "stock").exists()


def test_walk_forward_and_cells():
    report = cli.run(["train", "stock", *TINY, "--cell", "lstm", "--walk-forward", "2", "--no-export"])
    assert report.cell == "lstm"
    assert len(report.extra["walk-forward RMSE / persistence"]) == 2
    for name in ("model", "normal band (20 days)", "GARCH(1,1)"):
        folds = report.extra[f"walk-forward 80% coverage / interval score, {name}"]
        assert len(folds) == 2 and all(0 <= coverage <= 1 and score > 0 for coverage, score in folds)


def test_a_series_that_never_moves_gets_a_finite_band(tmp_path):
    dates = pd.bdate_range("2020-01-01", periods=200)
    path = tmp_path / "flat.csv"
    pd.DataFrame({"Date": dates.strftime("%Y-%m-%d"), "Close": 50.0}).to_csv(path, index=False)
    report = cli.run(["train", "stock", *TINY, "--csv", str(path), "--horizon", "2", "--calibration-length", "20",
                      "--export-dir", str(tmp_path / "exports")])
    predicted = cli.run(["predict", "stock", "--model", report.export_path, "--csv", str(path)])
    values = predicted.to_numpy()
    assert np.all(np.isfinite(values)) and np.all(np.abs(values - 50.0) < 1.0)
    coverage = report.extra  # the training report holds the validation fit, the evaluation the test figures
    assert coverage["band width below / above the median (fitted on validation)"] == [[0.0, 0.0], [0.0, 0.0]]


def test_csv_training_and_bad_arguments(tmp_path):
    series = short_sample(120)
    path = tmp_path / "prices.csv"
    pd.DataFrame({"Date": series.dates.strftime("%Y-%m-%d"), "Close": series.close}).to_csv(path, index=False)
    with pytest.raises(InputError, match="--calibration-length: prices.csv:Close has 120 prices, and a "
                       "calibrated test forecast needs 258"):
        cli.run(["train", "stock", *TINY, "--csv", str(path), "--no-export"])
    report = cli.run(["train", "stock", *TINY, "--csv", str(path), "--cell", "rnn", "--calibration", "none",
                      "--no-export"])
    assert report.data == "prices.csv:Close"
    with pytest.raises(InputError, match="no column named 'Price'"):
        cli.run(["train", "stock", *TINY, "--csv", str(path), "--target", "Price", "--no-export"])
    with pytest.raises(InputError, match="shorter than window"):
        cli.run(["train", "stock", *TINY, "--csv", str(path), "--window", "200", "--no-export"])


def test_quantile_flag_needs_rising_levels_and_the_median(rejected):
    with pytest.raises(InputError, match="--quantiles: must include 0.5"):
        cli.run(["train", "stock", "--quantiles", "0.1,0.9"])
    assert "--quantiles" in rejected(["train", "stock", "--quantiles", "0.9,0.5,0.1"])
    assert "--quantiles" in rejected(["train", "stock", "--quantiles", "0,0.5"])
    with pytest.raises(InputError, match="--calibration-length and --calibration-decay: 3 past forecasts"):
        cli.run(["train", "stock", "--calibration-length", "3"])
    assert "--calibration-decay" in rejected(["train", "stock", "--calibration-decay", "0"])
