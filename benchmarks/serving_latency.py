"""Latency and throughput of each app's export, loaded in-process (no HTTP).

For each export, `serving_default` is called with the app's `serving_example`:
one instance at a time, back to back, for `--seconds` (p50 and p99 latency),
then in batches of `--batch` copies of it (instances per second: texts,
clips, sentences, prompts or windows). The apps that generate text
(translation, chatbot) are measured once per decoding, greedy and beam, since
an export's decoding is fixed when it is trained.

    python benchmarks/serving_latency.py [--models DIR] [--seconds 10] [--batch 64]
        [--apps sentiment,speech] [--intra-op-threads N] [--formats]

With `--formats`, the exports of the apps that convert (`gru-suite export`)
are also written as LiteRT and ONNX files and each file is measured the same
way, through the `Export` that `predict` runs it with (for the transcriber,
with the CTC decoding its client does).

Without `--models`, each app's `reproduce --quick` export (and, for the apps
that generate text, one per decoding) is trained into a temporary folder
first (a few minutes); with it, each app's export there is measured with the
decoding it was trained with. `--intra-op-threads` sets TensorFlow's
intra-op thread pool (default: one thread per core), as TF Serving's
`--tensorflow_intra_op_parallelism` does.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

from apps.common.app import App, Export, signature_inputs  # noqa: E402
from apps.common.export import read_metadata  # noqa: E402
from apps.common.formats import load_file_export, write_format  # noqa: E402
from apps.common.running import load_export, registered_app  # noqa: E402
from apps.common.settings import FORMAT_FILES  # noqa: E402
from apps.registry import REGISTRY, load_app_packages  # noqa: E402
from serving_load import Run, train_quick_exports  # noqa: E402

DECODINGS = ("greedy", "beam")


def quick_exports(root: Path, apps: list[str]) -> list[tuple[str, Path]]:
    """Trains each app's quick export under `root` (one per decoding for the
    apps that generate text); returns (app, models folder) pairs."""
    exports = []
    for name in apps:
        app = registered_app(name)
        variants = [("--decoding", decoding) for decoding in DECODINGS] if app.generates_text else [()]
        for variant in variants:
            models = root / (variant[1] if variant else "default")
            train_quick_exports(models, [name], variant)
            exports.append((name, models / name))
    return exports


def decoding_of(export: Export) -> str:
    """How the export decodes ("" for an app that generates no text)."""
    decoding = read_metadata(export.path).get("decoding")
    if not decoding:
        return ""
    width = f" (width {decoding['beam_width']})" if decoding["strategy"] == "beam" else ""
    return decoding["strategy"] + width


def batch_of(export: Export, example: dict, size: int) -> dict[str, tf.Tensor]:
    specs = signature_inputs(export.signature())
    return {name: tf.constant([value] * size, specs[name].dtype) for name, value in example.items()}


def single_requests(function, inputs: dict[str, tf.Tensor], seconds: float) -> Run:
    for _ in range(3):
        function(**inputs)
    latencies = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        begin = time.perf_counter()
        function(**inputs)
        latencies.append(time.perf_counter() - begin)
    return Run(latencies, time.perf_counter() - start, 0)


def batch_throughput(function, inputs: dict[str, tf.Tensor], size: int, seconds: float) -> float:
    """Instances per second of batched calls (the median batch time)."""
    function(**inputs)
    times = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds or len(times) < 3:
        begin = time.perf_counter()
        function(**inputs)
        times.append(time.perf_counter() - begin)
    return size / statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=Path, help="a models folder (default: train quick exports first)")
    parser.add_argument("--seconds", type=float, default=10.0, help="per app and measurement")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--apps", default=",".join(REGISTRY.apps()))
    parser.add_argument("--intra-op-threads", type=int, default=0, help="0: TensorFlow's default")
    parser.add_argument("--formats", action="store_true", help="also measure LiteRT and ONNX files")
    args = parser.parse_args()
    apps = [name for name in args.apps.split(",") if name]
    unknown = sorted(set(apps) - set(REGISTRY.apps()))
    if unknown:
        parser.error(f"unknown app(s) {', '.join(unknown)}")
    if args.seconds <= 0 or args.batch < 1 or args.intra_op_threads < 0:
        parser.error("--seconds and --batch must be positive, --intra-op-threads at least 0")
    if args.models is not None and not args.models.is_dir():
        parser.error(f"--models {args.models}: no such folder")
    if args.intra_op_threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.intra_op_threads)

    rows = []
    with tempfile.TemporaryDirectory(prefix="serving-latency-") as scratch:
        if args.models is None:
            os.chdir(scratch)  # training's run folders go there too
            exports = quick_exports(Path(scratch) / "models", apps)
        else:
            exports = [(name, args.models / name) for name in apps]
        for name, folder in exports:
            app = registered_app(name)
            export = load_export(app, folder)
            example = app.serving_example(export)
            decoding = decoding_of(export)
            measured = [("SavedModel", export)]
            if args.formats and type(app).portable_serving is not App.portable_serving:
                serving = app.portable_serving(export)
                measured += [(file_format, app.from_file(load_file_export(write_format(serving, export.path,
                                                                                        file_format))))
                             for file_format in FORMAT_FILES]
            for file_format, exported in measured:
                function = exported.signature()
                single = single_requests(function, batch_of(export, example, 1), args.seconds)
                throughput = batch_throughput(function, batch_of(export, example, args.batch), args.batch,
                                              args.seconds)
                rows.append((name, file_format, decoding, ", ".join(example), single, throughput))
                print(f"{name} {file_format} {decoding}: p50 {single.percentile_ms(50):.2f} ms, "
                      f"{throughput:.0f}/s batched", flush=True)

    threads = args.intra_op_threads or "default"
    print(f"\nin-process `serving_default`, {args.seconds:g} s per measurement, batches of {args.batch}, "
          f"intra-op threads {threads} ({time.strftime('%Y-%m-%d %H:%M %Z')}, {os.cpu_count()} CPUs, "
          f"TF {tf.__version__})\n")
    print("| app | format | decoding | input | single p50 ms | single p99 ms | single calls/s "
          f"| batch of {args.batch}: instances/s |")
    print("|---|---|---|---|---:|---:|---:|---:|")
    for name, file_format, decoding, inputs, single, throughput in rows:
        print(f"| {name} | {file_format} | {decoding or '-'} | {inputs} | {single.percentile_ms(50):.2f} "
              f"| {single.percentile_ms(99):.2f} | {single.rps:.1f} | {throughput:.0f} |")
    if not rows:
        sys.exit("serving_latency: nothing measured")


if __name__ == "__main__":
    load_app_packages()
    main()
