"""Stock forecaster quality on real Yahoo Finance exports: point forecasts and prediction intervals.

Trains on the first 70% of each series, picks early stopping, the shrink
factor and the band width on the next 15% and reports the last 15% (the test
split, never used for a choice), for horizons 1 and 5:

    python benchmarks/stock_quality.py --data-dir ../shared/datasets [--sets stocks,stocks_long]
        [--cell gru] [--seeds 3] [--window 20] [--quantiles 0.1,0.5,0.9]
        [--calibration additive|scaled|none] [--calibration-length 250] [--calibration-decay 0.985]

Point forecasts: the RMSE ratio to persistence (below 1.000 beats the last
price) and directional accuracy. Intervals: the coverage, the interval score
(Gneiting & Raftery; lower is better) and the worst coverage of 60
consecutive test forecasts of the widest central interval (80% by default),
calibrated on the model's recent errors as the export serves it and
uncalibrated, against a normal band from the last 20 days' volatility and
GARCH(1,1) fitted on the training part and rolled forward without
look-ahead. The calibration defaults are the app's. Test forecasts with fewer
than the prices calibration needs before them are left out (short series).
Targets on `stocks_long/`, at each horizon: coverage within 3 points of
nominal on every series, an interval score below GARCH(1,1)'s on at least
four of the five, and the worst 60-day coverage above 60%.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from apps.common.training import set_seed  # noqa: E402
from apps.stock.data import load_csv  # noqa: E402
from apps.common.errors import InputError  # noqa: E402
from apps.stock.calibration import CALIBRATION_METHODS, history_length  # noqa: E402
from apps.stock.evaluation import (MODEL_NAME, UNCALIBRATED_NAME, compare_intervals, evaluate,  # noqa: E402
                                   model_quantiles)
from apps.stock.intervals import ROLLING_ANCHORS, central_intervals  # noqa: E402
from apps.stock.model import train_forecaster  # noqa: E402
from apps.stock.windows import chronological_split  # noqa: E402
from apps.stock.settings import DEFAULT_CALIBRATION, DEFAULT_QUANTILES, StockTrain  # noqa: E402

SETS = {"stocks": ("AAPL", "SPY"), "stocks_long": ("AAPL", "SPY", "IBM", "GOOG", "GLD")}
BASELINES = ("normal band (20 days)", "GARCH(1,1)")
ROWS = (MODEL_NAME, UNCALIBRATED_NAME, *BASELINES)  # the interval table's forecasters, in order
FIGURES = ("coverage", "score", "worst_window")  # per forecaster: IntervalMetrics' dicts, at the nominal level


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="folder holding stocks/ and stocks_long/")
    parser.add_argument("--sets", default="stocks,stocks_long", help="comma-separated, from " + ",".join(SETS))
    parser.add_argument("--cell", choices=["gru", "lstm", "rnn"], default="gru")
    parser.add_argument("--horizons", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--window", type=int, default=20)
    parser.add_argument("--units", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--quantiles", default=",".join(map(str, DEFAULT_QUANTILES)))
    parser.add_argument("--calibration", choices=[*CALIBRATION_METHODS, "none"],
                        default=DEFAULT_CALIBRATION.method)
    parser.add_argument("--calibration-length", type=int, default=DEFAULT_CALIBRATION.length)
    parser.add_argument("--calibration-decay", type=float, default=DEFAULT_CALIBRATION.decay)
    parser.add_argument("--seeds", type=int, default=3, help="training runs per case (seeds 0..N-1), default 3")
    parser.add_argument("--no-shrink", action="store_true",
                        help="report the raw model, without the validation-fitted shrink and band width")
    args = parser.parse_args()
    sets = [name for name in args.sets.split(",") if name]
    if unknown := sorted(set(sets) - set(SETS)):
        parser.error(f"--sets: unknown {', '.join(unknown)} (from {', '.join(SETS)})")
    levels = tuple(float(q) for q in args.quantiles.split(","))
    widest = central_intervals(levels)
    if not widest:
        parser.error("--quantiles: needs a pair q, 1-q for an interval")
    nominal = widest[0][2]
    settings = StockTrain(window=args.window, cell=args.cell, units=args.units, epochs=args.epochs,
                          quantiles=levels, no_shrink=args.no_shrink, calibration=args.calibration,
                          calibration_length=args.calibration_length,
                          calibration_decay=args.calibration_decay, verbose=0)
    try:
        settings.check()
    except InputError as error:
        parser.error(str(error))

    point_rows, interval_rows = [], []
    started = time.perf_counter()
    for set_name in sets:
        for ticker in SETS[set_name]:
            series = load_csv(args.data_dir / set_name / f"{ticker}.csv", target="Close")
            for horizon in args.horizons:
                split = chronological_split(len(series), args.window, horizon)
                config = dataclasses.replace(settings, horizon=horizon)
                # A calibrated forecast needs `history` prices up to its anchor: the test
                # forecasts of a short series may start earlier.
                history = history_length(args.window, horizon, config.interval_calibration)
                anchors = split.test[split.test >= history - 1]
                if len(anchors) == 0:
                    print(f"{set_name}/{ticker} h={horizon}: left out, no test forecast has the {history} "
                          "prices before it that calibration needs")
                    continue
                ratios, directions, figures = [], [], {}
                for seed in range(args.seeds):
                    set_seed(seed)
                    forecaster, _ = train_forecaster(series, split, config)
                    models = model_quantiles(forecaster, series, anchors)
                    test = evaluate(series, anchors, models[MODEL_NAME][..., forecaster.median_index],
                                    model_name=f"model ({args.cell})")
                    intervals = compare_intervals(series, anchors, models, levels, train_end=split.train_end)
                    ratios.append(test.ratio)
                    directions.append(test.direction if test.direction is not None else np.nan)
                    for name, metrics in intervals.items():
                        for figure in FIGURES:
                            figures.setdefault((name, figure), []).append(getattr(metrics, figure)[nominal])
                means = {key: float(np.mean(values)) for key, values in figures.items()}
                case = f"{set_name}/{ticker}"
                print(f"{case} h={horizon}: test ratio {np.mean(ratios):.4f}, {nominal:.0%} coverage "
                      f"{100 * means[MODEL_NAME, 'coverage']:.1f}%, score {means[MODEL_NAME, 'score']:.3f} "
                      f"(GARCH {means['GARCH(1,1)', 'score']:.3f}) [{time.perf_counter() - started:.0f} s]",
                      flush=True)
                point_rows.append((case, horizon, len(anchors), np.mean(ratios), np.min(ratios),
                                   np.max(ratios), np.nanmean(directions), test.up_share()))
                interval_rows.append((set_name, case, horizon, means))

    calibration = config.interval_calibration
    print(f"\nstock quality, cell={args.cell}, window={args.window}, {args.seeds} seed(s), quantiles {levels}, "
          f"validation fitting {'off' if args.no_shrink else 'on'}, calibration "
          f"{calibration.to_json() if calibration else 'off'}; test split = last 15% of each series\n")
    print("| series | h | test n | RMSE / persistence | (min-max) | direction | up share |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for case, horizon, count, mean, low, high, direction, up in point_rows:
        print(f"| {case} | {horizon} | {count} | {mean:.4f} | {low:.4f}-{high:.4f} | {100 * direction:.1f}% "
              f"| {100 * up:.1f}% |")
    label = f"{nominal:.0%}"
    rows = [name for name in ROWS if (name, "coverage") in interval_rows[0][3]] if interval_rows else []
    print(f"\n{label} interval per forecaster: coverage / interval score / worst coverage of "
          f"{ROLLING_ANCHORS} consecutive test forecasts (model rows: mean over seeds)\n")
    print("| series | h | " + " | ".join(rows) + " | model / GARCH score |")
    print("|---|---:|" + "---:|" * (len(rows) + 1))
    for _, case, horizon, means in interval_rows:
        cells = [f"{100 * means[name, 'coverage']:.1f}% / {means[name, 'score']:.3f} / "
                 f"{100 * means[name, 'worst_window']:.1f}%" for name in rows]
        print(f"| {case} | {horizon} | " + " | ".join(cells)
              + f" | {means[MODEL_NAME, 'score'] / means['GARCH(1,1)', 'score']:.3f} |")
    for horizon in args.horizons:
        long_rows = [means for set_name, _, h, means in interval_rows if set_name == "stocks_long" and h == horizon]
        if long_rows:
            within = sum(abs(means[MODEL_NAME, "coverage"] - nominal) <= 0.03 for means in long_rows)
            beats = sum(means[MODEL_NAME, "score"] < means["GARCH(1,1)", "score"] for means in long_rows)
            worst = min(means[MODEL_NAME, "worst_window"] for means in long_rows)
            print(f"stocks_long h={horizon}: coverage within 3 points on {within}/{len(long_rows)}, "
                  f"interval score below GARCH(1,1) on {beats}/{len(long_rows)}, worst {ROLLING_ANCHORS}-day "
                  f"coverage {100 * worst:.1f}% (target > 60%)")
    print(f"wall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
