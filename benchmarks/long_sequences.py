"""GRU against LSTM on a recall task whose dependency spans the whole sequence.

    python benchmarks/long_sequences.py [--lengths 10,20,30,50,100,200,500,1000 --units 32
        --steps 1200 --seeds 0,1 --cells gru,lstm --output docs/long_sequences.png]

Each sequence has L steps over K input channels: the first step is one of K
symbols (one-hot), every later step is blank (all zeros). The model reads the
sequence with `recurrent_layer(cell, units)` and classifies, from the last
state alone (a Dense layer over K), which symbol came first, so the only useful
input lies L - 1 steps behind the output and the cell has to carry it that far
(and the gradient has to come back that far). Chance is 1 / K. With blank
filler there are only K distinct sequences per length, so test accuracy
measures whether the symbol survives L steps, not generalisation.

For every length, cell and seed the model is trained from scratch with the same
budget: `--steps` (at least 2) Adam updates on fresh random batches, then
scored on a fixed test set of that length (the same set for every cell and
seed). Prints a markdown table of mean test accuracy (with min-max over seeds)
and mean milliseconds per training step for each length and cell, and plots
accuracy against L to `--output`. Step times are wall time on whatever the
machine is doing, so they compare cells only within one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import keras
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import tensorflow as tf  # noqa: E402

from apps.common.cells import recurrent_layer  # noqa: E402

TEST_SEED = 12345


@dataclass(frozen=True)
class Result:
    cell: str
    length: int
    seed: int
    accuracy: float
    step_ms: float


def recall_batch(
    generator: tf.random.Generator, batch: int, length: int, symbols: int
) -> tuple[tf.Tensor, tf.Tensor]:
    """A batch of recall sequences `(batch, length, symbols)` and their first symbols."""
    first = generator.uniform((batch,), maxval=symbols, dtype=tf.int32)
    blanks = tf.zeros((batch, length - 1, symbols))
    return tf.concat([tf.one_hot(first, symbols)[:, None, :], blanks], axis=1), first


def build_model(cell: str, units: int, length: int, symbols: int) -> keras.Model:
    return keras.Sequential([
        keras.Input((length, symbols)),
        recurrent_layer(cell, units),
        keras.layers.Dense(symbols),
    ])


def train_and_score(
    cell: str, length: int, seed: int, args: argparse.Namespace, test: tuple[tf.Tensor, tf.Tensor]
) -> Result:
    """Trains one model for `args.steps` updates and returns its held-out accuracy."""
    keras.utils.set_random_seed(seed)
    model = build_model(cell, args.units, length, args.symbols)
    optimizer = keras.optimizers.Adam(args.learning_rate, clipnorm=1.0)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    generator = tf.random.Generator.from_seed(seed)

    @tf.function(jit_compile=args.jit)
    def train_step() -> tf.Tensor:
        x, y = recall_batch(generator, args.batch_size, length, args.symbols)
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    @tf.function(jit_compile=args.jit)
    def predict(x: tf.Tensor) -> tf.Tensor:
        return tf.argmax(model(x, training=False), axis=-1, output_type=tf.int32)

    train_step().numpy()  # traces (and compiles) the step; not timed
    start = time.perf_counter()
    for _ in range(args.steps - 1):
        loss = train_step()
    loss.numpy()
    step_ms = (time.perf_counter() - start) / (args.steps - 1) * 1000

    x_test, y_test = test
    correct = 0
    for begin in range(0, len(y_test), 500):
        predicted = predict(x_test[begin : begin + 500])
        correct += int(tf.reduce_sum(tf.cast(predicted == y_test[begin : begin + 500], tf.int32)))
    return Result(cell, length, seed, correct / len(y_test), step_ms)


def markdown_table(results: list[Result], cells: list[str], lengths: list[int]) -> str:
    header = "| L | " + " | ".join(
        f"{cell} accuracy | {cell} ms/step" for cell in cells
    ) + " |"
    lines = [header, "|---:|" + "---:|---:|" * len(cells)]
    for length in lengths:
        row = [str(length)]
        for cell in cells:
            runs = [r for r in results if r.cell == cell and r.length == length]
            accuracies = [r.accuracy for r in runs]
            row.append(
                f"{statistics.mean(accuracies):.3f} ({min(accuracies):.2f}-{max(accuracies):.2f})"
            )
            row.append(f"{statistics.mean(r.step_ms for r in runs):.0f}")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def plot(results: list[Result], cells: list[str], lengths: list[int], args: argparse.Namespace) -> None:
    figure, axis = plt.subplots(figsize=(6.4, 4.2))
    for cell in cells:
        means, lows, highs = [], [], []
        for length in lengths:
            accuracies = [r.accuracy for r in results if r.cell == cell and r.length == length]
            means.append(statistics.mean(accuracies))
            lows.append(min(accuracies))
            highs.append(max(accuracies))
        axis.plot(lengths, means, marker="o", label=cell.upper())
        axis.fill_between(lengths, lows, highs, alpha=0.2)
    axis.axhline(1 / args.symbols, color="grey", linestyle="--", label="chance")
    axis.set_xscale("log")
    axis.set_xlabel("sequence length L (steps between the symbol and the output)")
    axis.set_ylabel("test accuracy")
    axis.set_ylim(0, 1.05)
    axis.set_title(
        f"Recall of the first of {args.symbols} symbols: {args.units} units, "
        f"{args.steps} steps × batch {args.batch_size}, seeds {args.seeds}",
        fontsize=9,
    )
    axis.legend()
    figure.tight_layout()
    args.output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.output, dpi=120)


def int_list(text: str) -> list[int]:
    return [int(item) for item in text.split(",")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int_list, default=[10, 20, 30, 50, 100, 200, 500, 1000],
                        help="comma-separated sequence lengths, default 10,20,30,50,100,200,500,1000")
    parser.add_argument("--units", type=int, default=32, help="default 32")
    parser.add_argument("--steps", type=int, default=1200,
                        help="training updates per model, default 1200")
    parser.add_argument("--seeds", type=int_list, default=[0, 1], help="default 0,1")
    parser.add_argument("--cells", type=lambda s: s.split(","), default=["gru", "lstm"],
                        help="comma-separated names for recurrent_layer, default gru,lstm")
    parser.add_argument("--output", type=Path, default=Path("docs/long_sequences.png"),
                        help="plot path, default docs/long_sequences.png")
    parser.add_argument("--symbols", type=int, default=8, help="alphabet size K, default 8")
    parser.add_argument("--batch-size", type=int, default=32, help="default 32")
    parser.add_argument("--learning-rate", type=float, default=3e-3, help="Adam, default 3e-3")
    parser.add_argument("--test-size", type=int, default=1000, help="default 1000")
    parser.add_argument("--jit", action="store_true", help="XLA-compile training and prediction")
    args = parser.parse_args()

    start = time.perf_counter()
    results = []
    for length in args.lengths:
        test = recall_batch(
            tf.random.Generator.from_seed(TEST_SEED), args.test_size, length, args.symbols
        )
        for seed in args.seeds:
            for cell in args.cells:
                result = train_and_score(cell, length, seed, args, test)
                results.append(result)
                print(f"L={length} {cell} seed={seed}: accuracy {result.accuracy:.3f}, "
                      f"{result.step_ms:.0f} ms/step", flush=True)

    print(
        f"\nRecall of the first of {args.symbols} symbols (chance {1 / args.symbols:.3f}); "
        f"{args.units} units, {args.steps} steps × batch {args.batch_size}, "
        f"Adam {args.learning_rate}, seeds {args.seeds}, {args.test_size} test sequences, "
        f"jit_compile={args.jit}, {os.cpu_count()} CPUs, TF {tf.__version__}, "
        f"Keras {keras.__version__}"
    )
    print("accuracy: mean over seeds (min-max); ms/step: mean wall time of a training step "
          "(batch, forward, backward, update), the first (traced) step left out.\n")
    print(markdown_table(results, args.cells, args.lengths))
    plot(results, args.cells, args.lengths, args)
    print(f"\nplot: {args.output}; {time.perf_counter() - start:.0f} s wall in all")


if __name__ == "__main__":
    main()
