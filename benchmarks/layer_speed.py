"""Times gru_core.GRU against Keras's recurrent layers and, where torch imports, PyTorch's.

    python benchmarks/layer_speed.py [--batch 64 --steps 100 --features 128 --units 128
        --repeats 20 --jit]
    python benchmarks/layer_speed.py --sweep [--repeats 5 --output docs/layer_speed_sweep.png]

Each layer gets a tiny model (the recurrent layer, then a Dense(1) on the last
output): Keras's compiled as `tf.function`s, PyTorch's run eagerly (its
forward pass under `torch.inference_mode`). Where the `onnx` and `litert`
extras are installed, gru_core's model is also exported with
`gru_core.export_onnx` (the native GRU op) and `gru_core.export_litert` and
its forward pass timed in ONNX Runtime and LiteRT. A forward pass is the model on the
batch with no gradient; a training step is that plus the MSE loss, its
gradient and an Adam update. All layers are timed round-robin within one run,
so that load on the machine hits them all alike; each figure is a median.

The table also gives the achieved matrix-multiply rate: a layer with g gate
blocks (GRU 3, LSTM 4, SimpleRNN 1) does 2·batch·steps·(features + units)·g·units
floating-point operations in its products per forward pass, and about three
times that per training step (the forward products, then those for the
gradients of the inputs and of the weights). Elementwise work is left out, so
the rate is a lower bound on the work done. It is set against this machine's
measured peak: the best of TensorFlow's and PyTorch's 1,024 × 1,024 float32
matrix products.

`--sweep` times gru_core.GRU, Keras's GRU(reset_after=False) and LSTM and,
where available, PyTorch's GRU over sequence lengths 10 … 1,000 (at --batch)
and batch sizes 1 … 256 (at --steps), prints both tables and plots them.
PyTorch is an optional extra (`pip install -e ".[bench]"`), never a
dependency of the package or its tests.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import gru_core
from apps.common.figures import new_figure, save_figure
from layer_problem import add_problem_arguments, check_problem_arguments

try:
    import torch
except ImportError:
    torch = None
try:
    import onnxruntime
except ImportError:
    onnxruntime = None
try:
    from ai_edge_litert.interpreter import Interpreter
except ImportError:
    Interpreter = None

SWEEP_LENGTHS = (10, 30, 100, 300, 1000)
SWEEP_BATCHES = (1, 4, 16, 64, 256)
PEAK_SIZE = 1024


@dataclass(frozen=True)
class Candidate:
    """One layer to time: how to build its forward and training step, and
    how many gate blocks its products have."""

    name: str
    gate_blocks: int
    build: Callable[[int, "Problem"], dict[str, Callable[[], object]]]


@dataclass(frozen=True)
class Problem:
    """The batch every layer runs on."""

    x: np.ndarray
    y: np.ndarray
    jit: bool

    @property
    def batch(self) -> int:
        return self.x.shape[0]

    @property
    def steps(self) -> int:
        return self.x.shape[1]

    @property
    def features(self) -> int:
        return self.x.shape[2]


def keras_steps(make_layer: Callable[[int], keras.layers.Layer]):
    def build(units: int, problem: Problem) -> dict[str, Callable[[], object]]:
        model = keras.Sequential(
            [
                keras.Input((problem.steps, problem.features)),
                make_layer(units),
                keras.layers.Dense(1),
            ]
        )
        optimizer = keras.optimizers.Adam()
        loss_fn = keras.losses.MeanSquaredError()
        x, y = tf.constant(problem.x), tf.constant(problem.y)

        @tf.function(jit_compile=problem.jit)
        def forward():
            return model(x, training=False)

        @tf.function(jit_compile=problem.jit)
        def train_step():
            with tf.GradientTape() as tape:
                loss = loss_fn(y, model(x, training=True))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply(grads, model.trainable_variables)
            return loss

        return {"forward": lambda: np.asarray(forward()), "train step": lambda: np.asarray(train_step())}

    return build


def torch_steps(module_name: str):
    def build(units: int, problem: Problem) -> dict[str, Callable[[], object]]:
        recurrent = getattr(torch.nn, module_name)(problem.features, units, batch_first=True)
        head = torch.nn.Linear(units, 1)
        optimizer = torch.optim.Adam([*recurrent.parameters(), *head.parameters()])
        x, y = torch.from_numpy(problem.x), torch.from_numpy(problem.y)

        def model():
            return head(recurrent(x)[0][:, -1])

        def forward():
            with torch.inference_mode():
                return model().numpy()

        def train_step():
            optimizer.zero_grad()
            loss = torch.nn.functional.mse_loss(model(), y)
            loss.backward()
            optimizer.step()
            return loss.item()

        return {"forward": forward, "train step": train_step}

    return build


def torch_onnx_forward(units: int, problem: Problem) -> dict[str, Callable[[], object]]:
    """PyTorch's nn.GRU and head exported by `torch.onnx.export` (its own native GRU node) in ONNX Runtime."""
    import onnx

    from gru_core.onnx import IR_VERSION, OPSET

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.recurrent = torch.nn.GRU(problem.features, units, batch_first=True)
            self.head = torch.nn.Linear(units, 1)

        def forward(self, x):
            return self.head(self.recurrent(x)[0][:, -1])

    path = Path(tempfile.mkdtemp(prefix="layer_speed_")) / "torch.onnx"
    # The TorchScript exporter: it writes nn.GRU as one GRU node at opset 17 (the torch.export one
    # starts at opset 18).
    torch.onnx.export(Model().eval(), (torch.from_numpy(problem.x),), str(path), input_names=["x"],
                      dynamic_axes={"x": {0: "batch", 1: "steps"}}, opset_version=OPSET, dynamo=False)
    exported = onnx.load(str(path))
    exported.ir_version = min(exported.ir_version, IR_VERSION)  # what ONNX Runtime reads
    session = onnxruntime.InferenceSession(exported.SerializeToString(), providers=["CPUExecutionProvider"])
    return {"forward": lambda: session.run(None, {"x": problem.x})[0]}


def exported_forward(file_format: str):
    """gru_core.GRU's model written by `gru_core.export_onnx` (ONNX Runtime, the native GRU op) or
    `gru_core.export_litert` (ai-edge-litert), its forward pass only."""

    def build(units: int, problem: Problem) -> dict[str, Callable[[], object]]:
        model = keras.Sequential([keras.Input((None, problem.features)), gru_core.GRU(units), keras.layers.Dense(1)])
        folder = Path(tempfile.mkdtemp(prefix="layer_speed_"))
        if file_format == "onnx":
            path = gru_core.export_onnx(model, folder / "model.onnx")
            session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            name = session.get_inputs()[0].name
            return {"forward": lambda: session.run(None, {name: problem.x})[0]}
        interpreter = Interpreter(model_path=str(gru_core.export_litert(model, folder / "model.tflite")))
        given = interpreter.get_input_details()[0]["index"]
        interpreter.resize_tensor_input(given, problem.x.shape)
        interpreter.allocate_tensors()
        answer = interpreter.get_output_details()[0]["index"]

        def forward():
            interpreter.set_tensor(given, problem.x)
            interpreter.invoke()
            return interpreter.get_tensor(answer)

        return {"forward": forward}

    return build


CANDIDATES = [
    Candidate("gru_core.GRU", 3, keras_steps(gru_core.GRU)),
    Candidate(
        "keras GRU(reset_after=False)", 3,
        keras_steps(lambda units: keras.layers.GRU(units, reset_after=False)),
    ),
    Candidate("keras GRU(reset_after=True)", 3, keras_steps(keras.layers.GRU)),
    Candidate("keras LSTM", 4, keras_steps(keras.layers.LSTM)),
    Candidate("keras SimpleRNN", 1, keras_steps(keras.layers.SimpleRNN)),
]
if torch is not None:
    CANDIDATES += [
        Candidate(f"PyTorch {torch.__version__.split('+')[0]} nn.GRU", 3, torch_steps("GRU")),
        Candidate(f"PyTorch {torch.__version__.split('+')[0]} nn.LSTM", 4, torch_steps("LSTM")),
    ]
if onnxruntime is not None:
    CANDIDATES.append(Candidate(f"gru_core.GRU in ONNX Runtime {onnxruntime.__version__} (native GRU op)", 3,
                                exported_forward("onnx")))
    if torch is not None:
        CANDIDATES.append(Candidate(f"PyTorch nn.GRU in ONNX Runtime {onnxruntime.__version__}", 3, torch_onnx_forward))
if Interpreter is not None:
    CANDIDATES.append(Candidate("gru_core.GRU in LiteRT (ai-edge-litert)", 3, exported_forward("litert")))
SWEPT = [c for c in CANDIDATES if c.name in ("gru_core.GRU", "keras GRU(reset_after=False)", "keras LSTM")]
SWEPT += [c for c in CANDIDATES if c.name.endswith("nn.GRU")]


def problem(batch: int, steps: int, features: int, jit: bool) -> Problem:
    rng = np.random.default_rng(0)
    return Problem(
        x=rng.normal(size=(batch, steps, features)).astype(np.float32),
        y=rng.normal(size=(batch, 1)).astype(np.float32),
        jit=jit,
    )


def median_times(
    candidates: list[Candidate], units: int, batch: Problem, repeats: int
) -> dict[tuple[str, str], float]:
    """Median milliseconds of each candidate's forward pass and training step,
    timed round-robin after two warm-up calls each."""
    runs = {c.name: c.build(units, batch) for c in candidates}
    for fns in runs.values():
        for fn in fns.values():
            fn()
            fn()
    times = {(name, kind): [] for name, fns in runs.items() for kind in fns}
    for _ in range(repeats):
        for name, fns in runs.items():
            for kind, fn in fns.items():
                start = time.perf_counter()
                fn()
                times[(name, kind)].append(time.perf_counter() - start)
    return {key: statistics.median(value) * 1000 for key, value in times.items()}


def matmul_peak(repeats: int) -> dict[str, float]:
    """GFLOP/s of a 1,024 × 1,024 float32 matrix product, per library (median)."""
    flops = 2 * PEAK_SIZE**3
    rng = np.random.default_rng(0)
    a = rng.normal(size=(PEAK_SIZE, PEAK_SIZE)).astype(np.float32)
    tf_a = tf.Variable(a)
    runs = {"TensorFlow": tf.function(lambda: tf.matmul(tf_a, tf_a))}
    if torch is not None:
        torch_a = torch.from_numpy(a)
        runs["PyTorch"] = lambda: torch.matmul(torch_a, torch_a)
    peaks = {}
    for name, fn in runs.items():
        np.asarray(fn())
        times = []
        for _ in range(max(repeats, 10)):
            start = time.perf_counter()
            np.asarray(fn())
            times.append(time.perf_counter() - start)
        peaks[name] = flops / statistics.median(times) / 1e9
    return peaks


def product_gflop(candidate: Candidate, batch: Problem, units: int, kind: str) -> float:
    forward = 2 * batch.batch * batch.steps * (batch.features + units) * candidate.gate_blocks * units
    return forward * (3 if kind == "train step" else 1) / 1e9


def main_table(args: argparse.Namespace) -> None:
    batch = problem(args.batch, args.steps, args.features, args.jit)
    peaks = matmul_peak(args.repeats)
    peak = max(peaks.values())
    median = median_times(CANDIDATES, args.units, batch, args.repeats)
    print(
        f"batch {args.batch}, {args.steps} steps, {args.features} inputs, "
        f"{args.units} units, median of {args.repeats}, jit_compile={args.jit}, "
        f"TF {tf.__version__}, Keras {keras.__version__}"
        + (f", PyTorch {torch.__version__} ({torch.get_num_threads()} threads)" if torch else ", no PyTorch")
    )
    print(
        "matrix-product peak (1,024², float32): "
        + ", ".join(f"{name} {value:.0f} GFLOP/s" for name, value in peaks.items())
    )
    print(
        "| layer | forward (ms) | × gru_core | GFLOP/s (% of peak) "
        "| train step (ms) | × gru_core | GFLOP/s (% of peak) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    base = {kind: median[("gru_core.GRU", kind)] for kind in ("forward", "train step")}
    for candidate in CANDIDATES:
        cells = []
        for kind in ("forward", "train step"):
            if (candidate.name, kind) not in median:  # an export: inference only
                cells += ["–"] * 3
                continue
            ms = median[(candidate.name, kind)]
            rate = product_gflop(candidate, batch, args.units, kind) / (ms / 1000)
            cells += [f"{ms:.1f}", f"{ms / base[kind]:.2f}", f"{rate:.0f} ({100 * rate / peak:.0f}%)"]
        print(f"| {candidate.name} | " + " | ".join(cells) + " |")


def sweep(args: argparse.Namespace) -> None:
    points = [("steps", steps, args.batch, steps) for steps in SWEEP_LENGTHS]
    points += [("batch", batch, batch, args.steps) for batch in SWEEP_BATCHES]
    results = {}
    for axis, value, batch_size, steps in points:
        batch = problem(batch_size, steps, args.features, args.jit)
        results[(axis, value)] = median_times(SWEPT, args.units, batch, args.repeats)
        print(f"done: {axis} {value}", flush=True)
    figure = new_figure(11, 7.5)
    axes = figure.subplots(2, 2)
    for column, (axis, values, fixed) in enumerate(
        (("steps", SWEEP_LENGTHS, f"batch {args.batch}"), ("batch", SWEEP_BATCHES, f"{args.steps} steps"))
    ):
        for row, kind in enumerate(("forward", "train step")):
            print(f"\n{kind} (ms) by {axis}, {fixed}, {args.units} units, median of {args.repeats}")
            print("| layer | " + " | ".join(str(v) for v in values) + " |")
            print("|---|" + "---:|" * len(values))
            plot = axes[row][column]
            for candidate in SWEPT:
                series = [results[(axis, v)][(candidate.name, kind)] for v in values]
                print(f"| {candidate.name} | " + " | ".join(f"{ms:.1f}" for ms in series) + " |")
                plot.plot(values, series, marker="o", label=candidate.name)
            plot.set_xscale("log")
            plot.set_yscale("log")
            plot.set_xlabel("sequence length" if axis == "steps" else "batch size")
            plot.set_ylabel(f"{kind} (ms)")
            plot.set_title(f"{kind}, {fixed}")
            plot.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    figure.tight_layout()
    print(f"\nwrote {save_figure(figure, args.output)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_problem_arguments(parser)
    parser.add_argument("--jit", action="store_true", help="XLA-compile every Keras step")
    parser.add_argument("--sweep", action="store_true", help="sweep sequence length and batch size")
    parser.add_argument("--output", type=Path, default=Path("docs/layer_speed_sweep.png"))
    args = parser.parse_args()
    check_problem_arguments(parser, args)
    (sweep if args.sweep else main_table)(args)


if __name__ == "__main__":
    main()
