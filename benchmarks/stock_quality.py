"""Stock forecaster quality on real Yahoo Finance exports: point forecasts and prediction intervals.

Trains on the first 70% of each series, picks early stopping, the shrink
factor and the band width on the next 15% and reports the last 15% (the test
split, never used for a choice), for horizons 1 and 5:

    python benchmarks/stock_quality.py --data-dir ../shared/datasets [--sets stocks,stocks_long]
        [--cell gru] [--seeds 3] [--window 20] [--quantiles 0.1,0.5,0.9]

Point forecasts: the RMSE ratio to persistence (below 1.000 beats the last
price) and directional accuracy. Intervals: the coverage and the interval
score (Gneiting & Raftery; lower is better) of the widest central interval
(80% by default) against a normal band from the last 20 days' volatility and
GARCH(1,1) fitted on the training part and rolled forward without look-ahead.
Targets on `stocks_long/`: coverage within 3 points of nominal, and an
interval score below GARCH(1,1)'s on at least four of the five series, at
each horizon.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from apps.common.training import set_seed  # noqa: E402
from apps.stock.data import load_csv  # noqa: E402
from apps.stock.evaluation import compare_intervals, evaluate  # noqa: E402
from apps.stock.intervals import ROLLING_ANCHORS, central_intervals  # noqa: E402
from apps.stock.model import train_forecaster  # noqa: E402
from apps.stock.windows import chronological_split  # noqa: E402
from apps.stock.settings import DEFAULT_QUANTILES, StockTrain  # noqa: E402

SETS = {"stocks": ("AAPL", "SPY"), "stocks_long": ("AAPL", "SPY", "IBM", "GOOG", "GLD")}
BASELINES = ("normal band (20 days)", "GARCH(1,1)")


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

    point_rows, interval_rows = [], []
    started = time.perf_counter()
    for set_name in sets:
        for ticker in SETS[set_name]:
            series = load_csv(args.data_dir / set_name / f"{ticker}.csv", target="Close")
            for horizon in args.horizons:
                split = chronological_split(len(series), args.window, horizon)
                config = StockTrain(window=args.window, horizon=horizon, cell=args.cell, units=args.units,
                                    epochs=args.epochs, quantiles=levels, no_shrink=args.no_shrink, verbose=0)
                ratios, directions, coverages, scores, worst_windows = [], [], [], [], []
                for seed in range(args.seeds):
                    set_seed(seed)
                    forecaster, _ = train_forecaster(series, split, config)
                    quantiles = forecaster.predict_price_quantiles(series, split.test)
                    test = evaluate(series, split.test, quantiles[..., forecaster.median_index],
                                    model_name=f"model ({args.cell})")
                    intervals = compare_intervals(series, split.test, quantiles, levels, train_end=split.train_end,
                                                  model_name="model")
                    ratios.append(test.ratio)
                    directions.append(test.direction if test.direction is not None else np.nan)
                    coverages.append(intervals["model"].coverage[nominal])
                    scores.append(intervals["model"].score[nominal])
                    worst_windows.append(intervals["model"].worst_window[nominal])
                case = f"{set_name}/{ticker}"
                print(f"{case} h={horizon}: test ratio {np.mean(ratios):.4f}, {nominal:.0%} coverage "
                      f"{100 * np.mean(coverages):.1f}%, score {np.mean(scores):.3f} (GARCH "
                      f"{intervals['GARCH(1,1)'].score[nominal]:.3f}) [{time.perf_counter() - started:.0f} s]",
                      flush=True)
                point_rows.append((case, horizon, len(split.test), np.mean(ratios), np.min(ratios),
                                   np.max(ratios), np.nanmean(directions), test.up_share()))
                interval_rows.append((set_name, case, horizon, np.mean(coverages), np.mean(scores),
                                      [(intervals[b].coverage[nominal], intervals[b].score[nominal]) for b in BASELINES],
                                      np.mean(worst_windows), [intervals[b].worst_window[nominal] for b in BASELINES]))

    print(f"\nstock quality, cell={args.cell}, window={args.window}, {args.seeds} seed(s), quantiles {levels}, "
          f"validation fitting {'off' if args.no_shrink else 'on'}; test split = last 15% of each series\n")
    print("| series | h | test n | RMSE / persistence | (min-max) | direction | up share |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for case, horizon, count, mean, low, high, direction, up in point_rows:
        print(f"| {case} | {horizon} | {count} | {mean:.4f} | {low:.4f}-{high:.4f} | {100 * direction:.1f}% "
              f"| {100 * up:.1f}% |")
    label = f"{nominal:.0%}"
    print(f"\n| series | h | model {label} coverage | model score | normal band coverage | normal band score "
          f"| GARCH coverage | GARCH score | model / GARCH score |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for _, case, horizon, coverage, score, baselines, _, _ in interval_rows:
        (normal_coverage, normal_score), (garch_coverage, garch_score) = baselines
        print(f"| {case} | {horizon} | {100 * coverage:.1f}% | {score:.3f} | {100 * normal_coverage:.1f}% "
              f"| {normal_score:.3f} | {100 * garch_coverage:.1f}% | {garch_score:.3f} | {score / garch_score:.3f} |")
    print(f"\nWorst {label} coverage of {ROLLING_ANCHORS} consecutive test forecasts (model: mean over seeds):\n")
    print("| series | h | model | normal band | GARCH |")
    print("|---|---:|---:|---:|---:|")
    for _, case, horizon, _, _, _, worst, (normal_worst, garch_worst) in interval_rows:
        print(f"| {case} | {horizon} | {100 * worst:.1f}% | {100 * normal_worst:.1f}% | {100 * garch_worst:.1f}% |")
    for horizon in args.horizons:
        long_rows = [row for row in interval_rows if row[0] == "stocks_long" and row[2] == horizon]
        if long_rows:
            within = sum(abs(row[3] - nominal) <= 0.03 for row in long_rows)
            beats = sum(row[4] < row[5][1][1] for row in long_rows)
            print(f"stocks_long h={horizon}: coverage within 3 points on {within}/{len(long_rows)}, "
                  f"interval score below GARCH(1,1) on {beats}/{len(long_rows)}")
    print(f"wall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
