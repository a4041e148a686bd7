"""Times gru_core.GRU against Keras's recurrent layers on the same problem.

    python benchmarks/layer_speed.py [--batch 64 --steps 100 --features 128 --units 128 --repeats 20]

Each layer gets a tiny model (the recurrent layer, then a Dense(1)) compiled as
`tf.function`s; the layers are timed round-robin within one run so that load on
the machine hits them all alike. Prints the median time of a forward pass and a
training step, and each ratio to gru_core.GRU.
"""

from __future__ import annotations

import argparse
import statistics
import time

import keras
import numpy as np
import tensorflow as tf

import gru_core

CANDIDATES = {
    "gru_core.GRU": lambda units: gru_core.GRU(units),
    "keras GRU(reset_after=False)": lambda units: keras.layers.GRU(
        units, reset_after=False
    ),
    "keras GRU(reset_after=True)": lambda units: keras.layers.GRU(units),
    "keras LSTM": lambda units: keras.layers.LSTM(units),
    "keras SimpleRNN": lambda units: keras.layers.SimpleRNN(units),
}


def build_steps(make_layer, args, x, y):
    model = keras.Sequential(
        [keras.Input((args.steps, args.features)), make_layer(args.units), keras.layers.Dense(1)]
    )
    optimizer = keras.optimizers.Adam()
    loss_fn = keras.losses.MeanSquaredError()

    @tf.function(jit_compile=args.jit)
    def forward():
        return model(x, training=False)

    @tf.function(jit_compile=args.jit)
    def train_step():
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    return {"forward": forward, "train step": train_step}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--features", type=int, default=128)
    parser.add_argument("--units", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--jit", action="store_true", help="XLA-compile every step")
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(args.batch, args.steps, args.features)), tf.float32)
    y = tf.constant(rng.normal(size=(args.batch, 1)), tf.float32)
    steps = {name: build_steps(make, args, x, y) for name, make in CANDIDATES.items()}
    for fns in steps.values():  # trace and warm up
        for fn in fns.values():
            fn()
            fn()

    times = {(name, kind): [] for name in steps for kind in ("forward", "train step")}
    for _ in range(args.repeats):
        for name, fns in steps.items():
            for kind, fn in fns.items():
                start = time.perf_counter()
                np.asarray(fn())
                times[(name, kind)].append(time.perf_counter() - start)

    median = {key: statistics.median(value) * 1000 for key, value in times.items()}
    print(
        f"batch {args.batch}, {args.steps} steps, {args.features} inputs, "
        f"{args.units} units, median of {args.repeats}, jit_compile={args.jit}, "
        f"TF {tf.__version__}, Keras {keras.__version__}"
    )
    print("| layer | forward (ms) | × gru_core | train step (ms) | × gru_core |")
    print("|---|---:|---:|---:|---:|")
    base_f = median[("gru_core.GRU", "forward")]
    base_t = median[("gru_core.GRU", "train step")]
    for name in steps:
        f, t = median[(name, "forward")], median[(name, "train step")]
        print(f"| {name} | {f:.1f} | {f / base_f:.2f} | {t:.1f} | {t / base_t:.2f} |")


if __name__ == "__main__":
    main()
