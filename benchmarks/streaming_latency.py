"""Latency of the streaming word recogniser: from the end of a spoken digit to its label.

    python benchmarks/streaming_latency.py --data-dir ../shared/datasets [--epochs 25] [--units 64] [--plot PNG]

Trains `train speech --streaming`'s model on FSDD's index split (recordings
5-49), then streams each test clip (recordings 0-4, one second, the digit
centred) through its `stream` step in chunks of 20 ms and of 100 ms, all
clips as one batch (streams in a batch do not mix). A clip's label "appears"
after the first chunk from which the streamed answer is the right digit and
stays so to the clip's end; the digit "ends" at the end of its last 10 ms
hop within 30 dB of its loudest. The latency is the audio between the two
(negative: recognised before the word ended), plus the compute of the call
that delivered it (`streaming_speed.py` measures that per chunk). Clips whose
final answer is wrong have no latency and are counted apart. Medians and 90th
percentiles in ms; `--plot` draws each chunk size's latencies as a cumulative distribution.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from apps.common.audio import SAMPLE_RATE  # noqa: E402
from apps.common.figures import new_figure, save_figure  # noqa: E402
from apps.common.streaming import initial_stream_state  # noqa: E402
from apps.common.streaming_features import HOP  # noqa: E402
from apps.speech.data import load_flat_folder  # noqa: E402
from apps.speech.settings import SpeechTrain  # noqa: E402
from apps.speech.streaming import stream_step  # noqa: E402
from apps.speech.training import train_speech_model  # noqa: E402

# A hop counts as the word while its energy is within this many dB of the loudest hop.
WORD_RANGE_DB = 30.0


def word_ends(waveforms: np.ndarray) -> np.ndarray:
    """Each clip's end of speech in samples: the end of its last hop within `WORD_RANGE_DB` of its loudest."""
    hops = waveforms[:, : waveforms.shape[1] // HOP * HOP].reshape(len(waveforms), -1, HOP)
    energy_db = 10 * np.log10(np.mean(np.square(hops), axis=2) + 1e-12)
    loud = energy_db > energy_db.max(axis=1, keepdims=True) - WORD_RANGE_DB
    last = loud.shape[1] - 1 - np.argmax(loud[:, ::-1], axis=1)
    return (last + 1) * HOP


def answers_after_each_chunk(model, waveforms: np.ndarray, chunk: int) -> tuple[np.ndarray, float]:
    """`[chunks, clips]` label ids after each chunk, and the median seconds of one `stream_step` call."""
    step = tf.function(lambda chunk_audio, state: stream_step(model, chunk_audio, state))
    state = initial_stream_state(model, len(waveforms))
    answers, seconds = [], []
    for start in range(0, waveforms.shape[1], chunk):
        started = time.perf_counter()
        probabilities, state = step(tf.constant(waveforms[:, start:start + chunk]), state)
        seconds.append(time.perf_counter() - started)
        answers.append(np.argmax(probabilities.numpy(), axis=-1))
    return np.stack(answers), float(np.median(seconds[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/datasets"))
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--units", type=int, default=SpeechTrain.units)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", type=Path, help="write the latencies' cumulative distributions to this PNG")
    args = parser.parse_args()
    recordings = args.data_dir / "fsdd" / "recordings"
    if not recordings.is_dir():
        parser.error(f"--data-dir: {recordings} not found (the folder holding fsdd/)")
    if args.epochs < 1 or args.units < 1:
        parser.error("--epochs and --units must be positive")

    data = load_flat_folder(recordings, "fsdd")
    config = SpeechTrain(streaming=True, epochs=args.epochs, units=args.units, seed=args.seed, verbose=0)
    started = time.perf_counter()
    model = train_speech_model(data, config)
    print(f"trained the streaming model on {len(data.train)} clips in {time.perf_counter() - started:.0f} s "
          f"({time.strftime('%Y-%m-%d %H:%M %Z')})")
    test = data.test
    ends = word_ends(test.waveforms)
    print(f"\n| chunk | recognised at the end | latency p50 (ms) | p90 (ms) | compute per call, batch {len(test)} (ms) |")
    print("|---|---:|---:|---:|---:|")
    latencies = {}
    for chunk_ms in (20, 100):
        chunk = chunk_ms * SAMPLE_RATE // 1000
        answers, call_seconds = answers_after_each_chunk(model, test.waveforms, chunk)
        right = answers == test.labels[np.newaxis, :]
        final = right[-1]
        # The first chunk from which every answer is right: one past the last wrong one.
        wrong_until = right.shape[0] - np.argmax(~right[::-1], axis=0)
        settled = np.where(right.all(axis=0), 0, wrong_until)
        heard = np.minimum((settled + 1) * chunk, test.waveforms.shape[1])
        latency_ms = (heard - ends)[final] * 1000 / SAMPLE_RATE + call_seconds * 1000
        print(f"| {chunk_ms} ms | {final.sum()}/{len(final)} | {np.median(latency_ms):.0f} "
              f"| {np.percentile(latency_ms, 90):.0f} | {call_seconds * 1000:.1f} |")
        latencies[chunk_ms] = np.sort(latency_ms)
    if args.plot:
        figure = new_figure(6, 3.6)
        axes = figure.add_subplot()
        for chunk_ms, values in latencies.items():
            axes.step(values, np.arange(1, len(values) + 1) / len(values), where="post", label=f"{chunk_ms} ms chunks")
        axes.axvline(0, color="grey", linewidth=0.8)
        axes.set_xlabel("label settled, ms after the spoken digit ended (negative: before)")
        axes.set_ylabel("share of test clips")
        axes.set_title(f"Streaming word recogniser on FSDD ({len(test)} test clips)")
        axes.legend(loc="lower right")
        axes.grid(alpha=0.3)
        figure.tight_layout()
        print(f"plot: {save_figure(figure, args.plot)}")


if __name__ == "__main__":
    main()
