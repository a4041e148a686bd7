"""Apps trained with `--backend jax` against TensorFlow: epoch time and the held-out figure
after the same wall-clock budget, on each app's real data.

    python benchmarks/backend_training.py --data-dir ../shared/datasets \
        [--apps sentiment,chatbot,translation,stock] [--minutes 8,7,6,2]

Each app trains twice through `gru-suite train` (run in-process; the JAX fit
runs in its own process, as it does for a user), once per backend, until its
budget of minutes ends the fit: the order of the two alternates from app to
app. Epoch times are the fit's own (`epoch_seconds` in the history): the first
epoch, which compiles the step, and the median of the others; the epoch the
budget cut short is left out. The held-out
figure is the one `gru-suite train` prints, scored through the exported
TensorFlow signatures either way. The apps that fit on TensorFlow only
(speech, transcriber) say why and are left out.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apps.common.backend_fit import BACKENDS  # noqa: E402
from apps.common.running import STOPPED_BY_BUDGET, registered_app, train_app  # noqa: E402
from apps.registry import REGISTRY, load_app_packages  # noqa: E402

# Each app's real data and the settings its own quality benchmark uses.
DATA: dict[str, Callable[[Path], list[str]]] = {
    "sentiment": lambda data_dir: [
        "--data", str(data_dir / "sst2"), "--units", "64", "--embedding-dim", "128", "--batch-size", "64",
        "--max-length", "64", "--subword-buckets", "0", "--validation-fraction", "0"],
    "chatbot": lambda data_dir: [
        # The generator alone (a hybrid's dual encoder fits on TensorFlow), on the split measured.
        "--data", str(data_dir / "cornell" / "pairs.enc"), "--mode", "generative", "--split", "random",
        "--units", "256", "--batch-size", "64", "--max-length", "20", "--vocabulary-size", "8000"],
    "translation": lambda data_dir: [
        "--data", f"{data_dir / 'multi30k' / 'train.de'},{data_dir / 'multi30k' / 'train.en'}", "--units", "256",
        "--embedding-dim", "256", "--batch-size", "64", "--vocabulary-size", "10000", "--max-length", "40",
        "--dropout", "0.2", "--decoding", "greedy"],
    "stock": lambda data_dir: ["--csv", str(data_dir / "stocks_long" / "SPY.csv"), "--units", "32"],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True,
                        help="folder holding sst2/, cornell/, multi30k/ and stocks_long/")
    parser.add_argument("--apps", default="sentiment,chatbot,translation,stock")
    parser.add_argument("--minutes", default="8,7,6,2",
                        help="training budget per app, in --apps order (one value: every app)")
    args = parser.parse_args()
    load_app_packages()
    apps = [name for name in args.apps.split(",") if name]
    known = REGISTRY.apps()
    if not apps or any(name not in known for name in apps):
        parser.error(f"--apps: comma-separated names from {', '.join(known)} (got {args.apps!r})")
    try:
        minutes = [float(value) for value in args.minutes.split(",")]
    except ValueError:
        parser.error(f"--minutes: comma-separated numbers of minutes (got {args.minutes!r})")
    if not all(0 < value < float("inf") for value in minutes):
        parser.error(f"--minutes: each budget must be a positive number (got {args.minutes!r})")
    if len(minutes) == 1:
        minutes *= len(apps)
    if len(minutes) != len(apps):
        parser.error("--minutes: one value, or one per app of --apps")
    rows = []
    with tempfile.TemporaryDirectory() as root:
        for index, (app, budget) in enumerate(zip(apps, minutes)):
            reason = registered_app(app).tensorflow_only
            if reason:
                print(f"{app}: left out, it fits on TensorFlow only: {reason}", flush=True)
                continue
            if app not in DATA:
                print(f"{app}: left out, no benchmark data for it here", flush=True)
                continue
            order = BACKENDS if index % 2 == 0 else BACKENDS[::-1]
            for backend in order:
                report = train_app(app, [
                    *DATA[app](args.data_dir), "--epochs", "100000", "--minutes", str(budget),
                    "--backend", backend, "--verbose", "2", "--no-log", "--fresh",
                    "--export-dir", f"{root}/{app}-{backend}", "--run-dir", f"{root}/runs/{app}-{backend}",
                ])
                seconds = report.history["epoch_seconds"]
                # The epoch the budget cut short is left out of the timing (unless it is the only one).
                whole = seconds[:-1] if report.extra.get(STOPPED_BY_BUDGET) and len(seconds) > 1 else seconds
                rows.append({
                    "app": app, "backend": backend, "minutes": budget, "epochs": len(seconds),
                    "first": whole[0], "rest": statistics.median(whole[1:]) if len(whole) > 1 else None,
                    "metric": report.metric, "value": report.value,
                })
                print(f"{app} on {backend}: {rows[-1]}", flush=True)
    print("\n| app | backend | budget | epochs | first epoch | later epochs (median) | jax / tensorflow | held-out |")
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for row in rows:
        tensorflow_rest = next(other["rest"] for other in rows
                               if other["app"] == row["app"] and other["backend"] == "tensorflow")
        ratio = (f"{row['rest'] / tensorflow_rest:.2f}×"
                 if row["backend"] == "jax" and row["rest"] and tensorflow_rest else "")
        rest = f"{row['rest']:.2f} s" if row["rest"] else "–"
        print(f"| {row['app']} | {row['backend']} | {row['minutes']:g} min | {row['epochs']} | "
              f"{row['first']:.2f} s | {rest} | {ratio} | {row['metric']} {row['value']:.4f} |")


if __name__ == "__main__":
    main()
