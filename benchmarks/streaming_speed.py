"""Compute of the streaming word recogniser: one `stream` call per chunk at batch 1.

    python benchmarks/streaming_speed.py [--units 64] [--repeats 200]

Builds `train speech --streaming`'s model (untrained: the work per call does
not depend on the weights), writes its export as a SavedModel, loads it with
`tf.saved_model.load` and times, interleaved, round-robin: `stream` on chunks
of 20 ms and 100 ms with the state carried, `serving_default` on a whole
one-second clip and, where the extras are installed, `stream` written as a
LiteRT and an ONNX file on 20 ms chunks. Medians in ms, and the real-time factor (compute time per
second of audio). kws_streaming reports 0.44–0.53 ms per 20 ms packet for its
streaming GRU/CRNN models on a Pixel 4.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from apps.common.app import Serving  # noqa: E402
from apps.common.formats import load_file_export, write_format  # noqa: E402
from apps.common.speech_features import FEATURES  # noqa: E402
from apps.common.streaming_features import HOP  # noqa: E402
from apps.speech.serving import StreamingSpeechServer  # noqa: E402
from apps.speech.settings import SpeechTrain  # noqa: E402
from apps.speech.streaming import build_streaming_model  # noqa: E402

LABELS = [str(digit) for digit in range(10)]


def file_signature(server: StreamingSpeechServer, file_format: str, folder: str):
    """`server.stream` written as a LiteRT or ONNX file and opened as `predict` opens one."""
    serving = Serving({"stream": server.stream}, [server.model, server], {})
    return load_file_export(write_format(serving, Path(folder), file_format)).signature("stream")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--units", type=int, default=SpeechTrain.units)
    parser.add_argument("--repeats", type=int, default=200, help="calls timed per measurement")
    args = parser.parse_args()
    if args.units < 1 or args.repeats < 1:
        parser.error("--units and --repeats must be positive")

    server = StreamingSpeechServer(build_streaming_model(len(LABELS), SpeechTrain(units=args.units)), LABELS)
    folder = tempfile.mkdtemp(prefix="streaming_speed_")
    tf.saved_model.save(server, folder, signatures=server.endpoints())
    loaded = tf.saved_model.load(folder)
    stream, serve = loaded.signatures["stream"], loaded.signatures["serving_default"]
    clip = tf.constant(np.random.default_rng(0).normal(0, 0.1, (1, FEATURES.clip_samples)).astype(np.float32))

    def streamer(run, chunk_samples: int):
        """Calls `run` on the clip's chunks in turn, the state carried (back to the start after the last)."""
        state = dict(loaded.signatures["initial_state"](batch_size=tf.constant(1)))
        chunks = [clip[:, start:start + chunk_samples] for start in range(0, clip.shape[1], chunk_samples)]
        position = 0

        def call():
            nonlocal state, position
            outputs = run(waveform_chunk=chunks[position % len(chunks)], **state)
            state = {name: value for name, value in outputs.items() if name.startswith("state_")}
            position += 1
        return call

    runs = {"SavedModel stream, 20 ms chunk": (streamer(stream, 2 * HOP), 2 * HOP),
            "SavedModel stream, 100 ms chunk": (streamer(stream, 10 * HOP), 10 * HOP),
            "SavedModel serving_default, 1 s clip": (lambda: serve(waveform=clip), FEATURES.clip_samples)}
    for file_format, runtime in (("litert", "ai_edge_litert"), ("onnx", "onnxruntime")):
        if importlib.util.find_spec(runtime) is not None:
            file_stream = file_signature(server, file_format, folder)
            runs[f"{file_format} stream, 20 ms chunk"] = (streamer(file_stream, 2 * HOP), 2 * HOP)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for name, (call, _) in runs.items():  # warm-up: tracing and first allocations
        for _ in range(5):
            call()
    for _ in range(args.repeats):
        for name, (call, _) in runs.items():
            start = time.perf_counter()
            call()
            times[name].append(time.perf_counter() - start)

    print(f"\nstreaming word recogniser, {args.units} units, batch 1, median of {args.repeats} interleaved calls "
          f"({time.strftime('%Y-%m-%d %H:%M %Z')}, {os.cpu_count()} CPUs, TF {tf.__version__})\n")
    print("| call | ms per call | audio per call (ms) | real-time factor |")
    print("|---|---:|---:|---:|")
    for name, (_, samples) in runs.items():
        median = statistics.median(times[name]) * 1000
        audio = samples * 1000 / FEATURES.sample_rate
        print(f"| {name} | {median:.2f} | {audio:.0f} | {median / audio:.3f} |")


if __name__ == "__main__":
    main()
