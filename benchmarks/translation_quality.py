"""Translation quality on Multi30k German -> English: corpus BLEU and chrF on val.

    python benchmarks/translation_quality.py --data-dir ../shared/datasets --minutes 45

Trains `gru-suite train translation` on multi30k/train.de,train.en (10% of it
held out for early figures) within a --minutes budget, exports, then scores
the export, loaded afresh, on multi30k/val.de,val.en with `gru-suite evaluate`.
BLEU and chrF are computed by sacrebleu on case-folded text with punctuation
split off (the model's own normalization). With `--formats`, the export is
also written as LiteRT and ONNX files (`gru-suite export translation`), float
and dynamic int8, and each file is scored the same way.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from apps.common.formats import write_format
from apps.common.running import evaluate_app, load_export, registered_app, train_app
from apps.common.settings import FORMAT_FILES


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, required=True,
                        help="folder holding multi30k/ (train.de, train.en, val.de, val.en)")
    parser.add_argument("--minutes", type=float, default=45.0, help="training budget, default 45")
    parser.add_argument("--epochs", type=int, default=40, help="upper bound on epochs, default 40")
    parser.add_argument("--units", type=int, default=256, help="default 256")
    parser.add_argument("--embedding-dim", type=int, default=256, help="default 256")
    parser.add_argument("--batch-size", type=int, default=64, help="default 64")
    parser.add_argument("--cell", default="gru", choices=("gru", "lstm", "rnn"))
    parser.add_argument("--decoding", default="beam", choices=("greedy", "beam"))
    parser.add_argument("--formats", action="store_true",
                        help="also score the export's LiteRT and ONNX files, float and dynamic int8")
    parser.add_argument("--export-dir", type=Path, default=None,
                        help="where to export (default: a temporary folder)")
    args = parser.parse_args()

    folder = args.data_dir / "multi30k"
    train = f"{folder / 'train.de'},{folder / 'train.en'}"
    val = f"{folder / 'val.de'},{folder / 'val.en'}"
    export_dir = args.export_dir or Path(tempfile.mkdtemp(prefix="translation_quality_"))
    start = time.perf_counter()
    report = train_app("translation", [
        "--data", train, "--minutes", str(args.minutes),
        "--epochs", str(args.epochs), "--units", str(args.units),
        "--embedding-dim", str(args.embedding_dim), "--batch-size", str(args.batch_size),
        "--cell", args.cell, "--decoding", args.decoding, "--vocabulary-size", "10000",
        "--max-length", "40", "--dropout", "0.2", "--export-dir", str(export_dir), "--verbose", "2",
        # Never resume a backup left by an earlier (killed) run of the same command.
        "--fresh",
    ])
    scores = evaluate_app("translation", ["--model", report.export_path, "--data", val])
    print(
        f"\nMulti30k de->en val ({scores.details['pairs']} pairs): BLEU {scores.value:.2f}, "
        f"chrF {scores.details['held-out chrF']:.2f}; {report.epochs} epoch(s), {report.train_seconds / 60:.1f} min "
        f"of training, {time.perf_counter() - start:.0f} s wall in all (export {report.export_path})"
    )
    if args.formats:
        app = registered_app("translation")
        export = load_export(app, Path(report.export_path))
        serving = app.portable_serving(export)
        for file_format in FORMAT_FILES:
            for quantized in (False, True):
                path = write_format(serving, export.path, file_format, quantized)
                started = time.perf_counter()
                scored = evaluate_app("translation", ["--model", str(path), "--data", val])
                print(f"{path.name}: BLEU {scored.value:.2f}, chrF {scored.details['held-out chrF']:.2f} "
                      f"({time.perf_counter() - started:.0f} s to score)")


if __name__ == "__main__":
    main()
