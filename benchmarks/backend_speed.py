"""Times gru_core.GRU on each Keras backend beside PyTorch's `nn.GRU`, in one run.

    python benchmarks/backend_speed.py [--batch 64 --steps 100 --features 128 --units 128 --repeats 20]

Keras picks its backend at import, so each backend runs in a process of its
own (`--worker BACKEND`, started here with `KERAS_BACKEND` set), and so does
PyTorch's `nn.GRU`. Every worker builds the same tiny model (the recurrent
layer, then a Dense(1) on its last output), warms up, and then times one call
at a time when asked; the calls are asked for round-robin, one of each worker
and kind in turn, so that load on the machine hits them all alike. Each
figure is a median. JAX runs twice: with gru_core's fused loop (`gru_core.fused_jax`,
a hand-written backward pass) and held on Keras's generic loop (JAX's own
autodiff of the step), which shows which is faster there.

- A forward pass is the model on the batch with no gradient: Keras's
  `predict_on_batch` (compiled with XLA on TensorFlow and JAX, where
  `jit_compile=True`; torch runs eagerly), PyTorch's module under
  `torch.inference_mode`.
- A training step is that plus the MSE loss, its gradient and an Adam
  update: Keras's `train_on_batch`, PyTorch's usual eager loop.

Backends whose package does not import are left out, saying so.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

from layer_problem import add_problem_arguments, check_problem_arguments

# Worker name -> (Keras backend, whether the layer is held on Keras's generic time loop
# instead of the backend's fused one: JAX's both ways, to show which is faster there).
KERAS_WORKERS = {"tensorflow": ("tensorflow", False), "jax": ("jax", False),
                 "jax-generic-loop": ("jax", True), "torch": ("torch", False)}
PYTORCH = "pytorch-nn.GRU"
KINDS = ("forward", "train step")
WARM_UP_CALLS = 3


def keras_calls(args: argparse.Namespace):
    """The worker's calls on this process's Keras backend."""
    import keras
    import numpy as np

    import gru_core

    class GenericLoopGRU(gru_core.GRU):
        def _has_fused_loop(self) -> bool:
            return False

    layer = GenericLoopGRU if KERAS_WORKERS[args.worker][1] else gru_core.GRU
    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.batch, args.steps, args.features)).astype("float32")
    y = rng.normal(size=(args.batch, 1)).astype("float32")
    inputs = keras.Input((None, args.features))
    model = keras.Model(inputs, keras.layers.Dense(1)(layer(args.units)(inputs)))
    model.compile(optimizer="adam", loss="mse", jit_compile=keras.backend.backend() != "torch")
    return {"forward": lambda: model.predict_on_batch(x), "train step": lambda: model.train_on_batch(x, y)}


def pytorch_calls(args: argparse.Namespace):
    """PyTorch's own GRU, eagerly, as its users run it."""
    import torch

    torch.manual_seed(0)
    x = torch.randn(args.batch, args.steps, args.features)
    y = torch.randn(args.batch, 1)
    gru = torch.nn.GRU(args.features, args.units, batch_first=True)
    head = torch.nn.Linear(args.units, 1)
    optimizer = torch.optim.Adam([*gru.parameters(), *head.parameters()])

    def forward():
        with torch.inference_mode():
            return head(gru(x)[1][0])

    def train_step():
        optimizer.zero_grad()
        loss = torch.nn.functional.mse_loss(head(gru(x)[1][0]), y)
        loss.backward()
        optimizer.step()
        return loss.item()

    return {"forward": forward, "train step": train_step}


def worker(args: argparse.Namespace) -> None:
    """Answers "KIND" lines on stdin with the seconds one call took, after warming up."""
    calls = pytorch_calls(args) if args.worker == PYTORCH else keras_calls(args)
    for call in calls.values():
        for _ in range(WARM_UP_CALLS):
            call()
    print("ready", flush=True)
    for line in sys.stdin:
        call = calls[line.strip()]
        started = time.perf_counter()
        call()
        print(time.perf_counter() - started, flush=True)


def start_worker(name: str, args: argparse.Namespace) -> subprocess.Popen | None:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    if name != PYTORCH:
        env["KERAS_BACKEND"] = KERAS_WORKERS[name][0]
    command = [sys.executable, __file__, "--worker", name, "--batch", str(args.batch), "--steps", str(args.steps),
               "--features", str(args.features), "--units", str(args.units)]
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True, env=env)
    if process.stdout.readline().strip() != "ready":
        print(f"{name}: left out (it did not start; is its package installed?)")
        process.kill()
        return None
    return process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_problem_arguments(parser)
    parser.add_argument("--worker", choices=[*KERAS_WORKERS, PYTORCH], help=argparse.SUPPRESS)
    args = parser.parse_args()
    check_problem_arguments(parser, args)
    if args.worker:
        worker(args)
        return

    workers = {name: start_worker(name, args) for name in (*KERAS_WORKERS, PYTORCH)}
    workers = {name: process for name, process in workers.items() if process is not None}
    if not workers:
        sys.exit("backend_speed: no backend started")
    seconds = {(name, kind): [] for name in workers for kind in KINDS}
    for _ in range(args.repeats):
        for kind in KINDS:
            for name, process in workers.items():
                process.stdin.write(kind + "\n")
                process.stdin.flush()
                seconds[name, kind].append(float(process.stdout.readline()))
    for process in workers.values():
        process.stdin.close()
        process.wait()

    medians = {key: statistics.median(values) * 1000 for key, values in seconds.items()}
    print(f"\nbatch {args.batch}, {args.steps} steps, {args.features} inputs, {args.units} units; median of "
          f"{args.repeats} interleaved calls ({time.strftime('%Y-%m-%d %H:%M %Z')}, load average "
          f"{', '.join(f'{v:.2f}' for v in os.getloadavg())})\n")
    print("| layer | forward (ms) | train step (ms) | forward / PyTorch | train step / PyTorch |")
    print("|---|---:|---:|---:|---:|")
    for name in workers:
        label = PYTORCH if name == PYTORCH else f"gru_core.GRU on {name}"
        ratios = [f"{medians[name, kind] / medians[PYTORCH, kind]:.2f}" if PYTORCH in workers else "–"
                  for kind in KINDS]
        print(f"| {label} | {medians[name, 'forward']:.1f} | {medians[name, 'train step']:.1f} | "
              f"{ratios[0]} | {ratios[1]} |")


if __name__ == "__main__":
    main()
