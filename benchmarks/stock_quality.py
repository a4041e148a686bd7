"""Stock forecaster quality on real Yahoo Finance exports: RMSE ratio to persistence and direction.

Trains on the first 70% of each series, picks early stopping and the shrink
factor on the next 15% and reports the last 15% (the test split, never used
for a choice), for horizons 1 and 5:

    python benchmarks/stock_quality.py --data-dir ../shared/datasets [--cell gru] [--seeds 3]

A ratio below 1.000 beats the persistence (last price) forecast.
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
from apps.stock.evaluation import evaluate  # noqa: E402
from apps.stock.model import TrainingConfig, chronological_split, train_forecaster  # noqa: E402

FILES = ("AAPL.csv", "SPY.csv")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True, help="folder holding stocks/AAPL.csv, stocks/SPY.csv")
    parser.add_argument("--cell", choices=["gru", "lstm", "rnn"], default="gru")
    parser.add_argument("--horizons", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--window", type=int, default=20)
    parser.add_argument("--units", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--seeds", type=int, default=3, help="training runs per case (seeds 0..N-1), default 3")
    parser.add_argument("--no-shrink", action="store_true", help="report the raw model, without the validation-fitted shrink")
    args = parser.parse_args()

    rows = []
    started = time.perf_counter()
    for name in FILES:
        series = load_csv(args.data_dir / "stocks" / name, target="Close")
        for horizon in args.horizons:
            split = chronological_split(len(series), args.window, horizon)
            config = TrainingConfig(window=args.window, horizon=horizon, cell=args.cell, units=args.units,
                                    epochs=args.epochs, shrink=not args.no_shrink, verbose=0)
            ratios, directions, val_ratios = [], [], []
            for seed in range(args.seeds):
                set_seed(seed)
                forecaster, _ = train_forecaster(series, split, config)
                val = evaluate(series, split.validation, forecaster.predict_prices(series, split.validation),
                               model_name="model")
                test = evaluate(series, split.test, forecaster.predict_prices(series, split.test),
                                model_name=f"model ({args.cell})")
                ratios.append(test.ratio)
                directions.append(test.direction if test.direction is not None else np.nan)
                val_ratios.append(val.ratio)
            print(test.table(f"{name} horizon {horizon} (last seed)"), flush=True)
            rows.append((name, horizon, len(split.test), np.mean(val_ratios), np.mean(ratios),
                         np.min(ratios), np.max(ratios), np.nanmean(directions), test.up_share(),
                         test.metrics["moving average (5)"].rmse / test.metrics["persistence"].rmse))

    print(f"\nstock quality, cell={args.cell}, window={args.window}, {args.seeds} seed(s), "
          f"shrink {'off' if args.no_shrink else 'on'}; test split = last 15% of each series")
    print(f"{'data':<10}{'h':>3}{'test n':>8}{'val ratio':>11}{'test ratio':>12}{'(min-max)':>18}"
          f"{'direction':>11}{'up share':>10}{'MA(5) ratio':>13}")
    for name, horizon, count, val, mean, low, high, direction, up, ma in rows:
        print(f"{name:<10}{horizon:>3}{count:>8}{val:>11.4f}{mean:>12.4f}{f'({low:.4f}-{high:.4f})':>18}"
              f"{100 * direction:>10.1f}%{100 * up:>9.1f}%{ma:>13.3f}")
    print(f"wall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
