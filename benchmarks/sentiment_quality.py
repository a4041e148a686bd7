"""Sentiment quality on GLUE SST-2: train on train.tsv, report dev.tsv accuracy and wall time.

    python benchmarks/sentiment_quality.py --data-dir ../shared/datasets [--cell gru|lstm|rnn]

Each model is trained and exported by `gru-suite train sentiment` itself (run
in-process) on `<data-dir>/sst2`, which holds `train.tsv` (67,349 phrases and
sentences) and `dev.tsv` (872 sentences). With `--ensemble N`, N models with
seeds seed, seed+1, ... are trained and their exported SavedModels' dev
probabilities averaged. The dev set is only scored, never used for choices
during training.

The defaults (3 bidirectional models over word and hashed character n-gram
vectors, 2 epochs each, averaged) are the set-up that docs/apps/sentiment.md's
figures come from; `--subword-buckets 0 --ensemble 1` gives the plain word-level model.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from apps.common.export import load_exported  # noqa: E402
from apps.common.running import train_app  # noqa: E402
from apps.sentiment.data import read_table  # noqa: E402
from apps.sentiment.model import binary_metrics, predict_texts  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True,
                        help="folder holding sst2/train.tsv and sst2/dev.tsv")
    parser.add_argument("--cell", choices=("gru", "lstm", "rnn"), default="gru")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--embedding-dim", type=int, default=128)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--min-count", type=int, default=1)
    parser.add_argument("--subword-buckets", type=int, default=20000,
                        help="character n-gram hash buckets (0: words only), default 20000")
    parser.add_argument("--dropout", type=float, default=0.4)
    parser.add_argument("--word-dropout", type=float, default=0.15)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--ensemble", type=int, default=3, help="models averaged, default 3")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", type=int, default=2, choices=(0, 1, 2))
    args = parser.parse_args()

    folder = args.data_dir / "sst2"
    if not (folder / "train.tsv").is_file() or not (folder / "dev.tsv").is_file():
        parser.error(f"{folder} must hold train.tsv and dev.tsv")
    dev = read_table(folder / "dev.tsv")
    start = time.perf_counter()
    probabilities = []
    with tempfile.TemporaryDirectory() as export_root:
        for member in range(args.ensemble):
            report = train_app("sentiment", [
                "--data", str(folder), "--cell", args.cell,
                "--epochs", str(args.epochs), "--batch-size", str(args.batch_size),
                "--units", str(args.units), "--embedding-dim", str(args.embedding_dim),
                "--max-length", str(args.max_length), "--min-count", str(args.min_count),
                "--subword-buckets", str(args.subword_buckets),
                "--dropout", str(args.dropout), "--word-dropout", str(args.word_dropout),
                "--learning-rate", str(args.learning_rate), "--seed", str(args.seed + member),
                "--export-dir", export_root, "--run-dir", f"{export_root}/run{member}",
                "--verbose", str(args.verbose),
                # The published figures were measured training on all of SST-2's train split.
                "--validation-fraction", "0",
            ])
            loaded = load_exported(report.export_path)
            probabilities.append(predict_texts(loaded.signatures["serving_default"], dev.texts))
            so_far = binary_metrics(dev.labels, np.mean(probabilities, axis=0))["accuracy"]
            print(f"model {member + 1}/{args.ensemble} (seed {args.seed + member}): "
                  f"dev accuracy {report.value:.4f}, ensemble of {member + 1} {so_far:.4f}, "
                  f"{time.perf_counter() - start:.0f} s so far", flush=True)
    wall = time.perf_counter() - start
    metrics = binary_metrics(dev.labels, np.mean(probabilities, axis=0))
    print(f"SST-2 dev ({len(dev)} sentences), {args.cell}, ensemble of {args.ensemble}: "
          f"accuracy {metrics['accuracy']:.4f}, F1 {metrics['f1']:.4f}; wall time {wall:.0f} s")


if __name__ == "__main__":
    main()
