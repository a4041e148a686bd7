"""The contract every app implements, and what its parts hand each other.

An app is a subclass of `App` with

- config classes (`apps.common.config.Config`) for each verb: `Train` (the
  app's data and model settings on top of `TrainConfig`), `Evaluate` and
  `Predict` (on top of `ExportConfig`; both in `apps.common.settings`), and
  `Explain` if it explains;
- `load_data(config)`: the data set named by the config, in the app's own
  typed splits (any object with a `name`);
- `held_out(data)`: the part of it a training's own evaluation scores, in
  the type `evaluate` takes (by default the data itself), and
  `evaluation_data(config)`: what `gru-suite evaluate` scores;
- `train(config, data, fitting)`: builds the model, fits it through
  `fitting` and returns a `Trained` (the Keras model and the `Serving` that
  becomes the export);
- `evaluate(export, data, config)`: scores an `Export` (a loaded SavedModel
  or the in-process `Serving` of a training) on held-out data;
- `predict(export, config)`, `explain(export, config)`, `demo(export)`;
- `page(context)`: its tab of the demo page that `gru-suite serve` shows.

`apps.common.running.register_app(app)` turns it into `gru-suite
train|evaluate|predict APP` (and `explain APP`); `run_train` there is the
sequence every training follows.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar

import keras

from apps.common.backend_fit import FittedElsewhere, hand_back
from apps.common.config import Config
from apps.common.distributed import make_strategy
from apps.common.errors import InputError
from apps.common.settings import JIT_COMPILE, ExportConfig, TrainConfig
from apps.common.training import LOG_FOLDER, Stopwatch, TimeBudget, fit, set_jit_compile
from apps.registry import Task


# ----------------------------------------------------------------------------
# What an app's parts hand each other
# ----------------------------------------------------------------------------


class DataSet(Protocol):
    """What `run_train` needs of an app's data: the name reports give it."""

    name: str


D = TypeVar("D", bound=DataSet)  # an app's training data, in its own typed splits
E = TypeVar("E", bound=DataSet)  # what its `evaluate` scores


@dataclasses.dataclass
class Serving:
    """What becomes the export: named `tf.function` signatures and what they use.

    Attributes:
        endpoints: Signature name -> `tf.function` with a named input
            signature returning a dict; "serving_default" is required.
        tracked: Keras models, layers and `tf.Module`s the endpoints use.
        metadata: JSON-ready facts an app wants in the export's metadata
            (beside its name, which is always there).
        extras: Optional `extras(version_dir)` that writes further files
            (a `.keras` model for `explain`, say).
    """

    endpoints: dict[str, Callable]
    tracked: list
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)
    extras: Callable[[Path], None] | None = None


@dataclasses.dataclass
class Trained:
    """What `App.train` returns.

    Attributes:
        model: The trained Keras model (the report counts its parameters).
        serving: Its export; evaluated in-process before it is written.
        epochs: Epochs run.
        extra: Facts for the training report.
        export_skipped: Why this model is not exported, if it is not (its
            `serving` may then lack a `serving_default`).
        local: The app's trained object, handed to `evaluate` as
            `Export.local` when the model has no export to evaluate through.
    """

    model: keras.Model
    serving: Serving
    epochs: int
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    export_skipped: str | None = None
    local: Any = None


@dataclasses.dataclass
class Evaluation:
    """What `App.evaluate` measured: one headline metric and the rest."""

    metric: str
    value: float
    details: dict[str, Any] = dataclasses.field(default_factory=dict)
    summary: str = ""


@dataclasses.dataclass
class Export:
    """An export's signatures, from a SavedModel folder or a training in this process."""

    signatures: Mapping[str, Callable]
    metadata: dict[str, Any]
    path: Path | None = None
    keep_alive: Any = None  # the loaded SavedModel, which owns the signatures' variables
    local: Any = None  # see `Trained.local`

    def signature(self, name: str = "serving_default") -> Callable:
        if name not in self.signatures:
            raise InputError(
                f"{self.path or 'the model'}: the export has no {name!r} signature "
                f"(it has {', '.join(sorted(self.signatures))})."
            )
        return self.signatures[name]

    def input_specs(self, name: str = "serving_default") -> dict[str, Any]:
        """Input name -> `tf.TensorSpec` of a signature."""
        return signature_inputs(self.signature(name))

    @classmethod
    def of(cls, trained: Trained, app: str) -> "Export":
        """The in-process export of a training, before it is written."""
        serving = trained.serving
        # Concrete functions, as a loaded SavedModel's signatures are: they
        # show their input and output specs the same way.
        signatures = {name: fn.get_concrete_function() for name, fn in serving.endpoints.items()}
        return cls(signatures, {"app": app, **serving.metadata}, local=trained.local)


def signature_inputs(function: Any) -> dict[str, Any]:
    """Input name -> `tf.TensorSpec` of a concrete function (a loaded signature or a trace)."""
    args, kwargs = function.structured_input_signature
    return {**{spec.name: spec for spec in args}, **kwargs}


# ----------------------------------------------------------------------------
# The contract
# ----------------------------------------------------------------------------


class Fitting:
    """How `App.train` builds and fits: the strategy scope and `apps.common.training.fit`.

    Where `config.backend` is not this process's Keras backend, the fit ran in
    a process of its own (`apps.common.backend_fit`): that process's `Fitting`
    hands the fitted model back to `hand_back_to`, and this one's loads it from
    `fitted` instead of fitting.
    """

    def __init__(self, config: TrainConfig, run_dir: Path | None = None,
                 callbacks: Sequence[keras.callbacks.Callback] = (), *,
                 fitted: FittedElsewhere | None = None, hand_back_to: Path | None = None):
        """`run_dir`: where backups and, by default, the logs go (`run_directory`); None: no
        backups, and logs only where `config.log_dir` says. `callbacks` join every fit (a
        benchmark's timer or time budget)."""
        if config.backend != keras.backend.backend() and fitted is None:
            raise InputError(f"--backend {config.backend}: this process runs Keras on "
                             f"{keras.backend.backend()}; `gru-suite train` fits on another "
                             "backend in a process of its own.")
        self.fitted = fitted
        self.hand_back_to = hand_back_to
        self.minutes = config.minutes
        self.stopped_early = False  # whether --minutes ended the last fit
        self.strategy = make_strategy(config.strategy)
        self.verbose = config.verbose
        self.backup_dir = None if run_dir is None else run_dir / "backup"
        self.checkpoint_every = config.checkpoint_every
        self.fresh = config.fresh
        default_logs = None if run_dir is None else run_dir / LOG_FOLDER
        self.log_dir = None if config.no_log else (config.log_dir or default_logs)
        self.patience = config.patience
        self.jit_compile = JIT_COMPILE[config.jit_compile]
        self.dtype_policy = "float32" if config.mixed_precision == "off" else config.mixed_precision
        self.callbacks = list(callbacks)
        self.history: keras.callbacks.History | None = None  # the last fit's

    def part(self, name: str) -> "Fitting":
        """A `Fitting` for a further model of the same training (the chatbot's dual encoder beside its
        generator), with its backups and logs in a `name` subfolder so neither restores the other's."""
        if self.fitted is not None or self.hand_back_to is not None:
            raise InputError("--backend: a training of two models fits on TensorFlow only")
        part = copy.copy(self)
        part.backup_dir = None if self.backup_dir is None else self.backup_dir / name
        part.log_dir = None if self.log_dir is None else Path(self.log_dir) / name
        part.callbacks, part.history, part.stopped_early = list(self.callbacks), None, False
        return part

    @contextlib.contextmanager
    def scope(self) -> Iterator[None]:
        """Builds models in the strategy's scope, under the `--mixed-precision` dtype policy."""
        previous = keras.config.dtype_policy()
        keras.config.set_dtype_policy(self.dtype_policy)
        try:
            with self.strategy.scope():
                yield
        finally:
            keras.config.set_dtype_policy(previous)

    def compiles_with_xla(self, model: keras.Model) -> bool:
        """Sets `model.jit_compile` from `--jit-compile` and says whether its training step is
        compiled with XLA (for "auto": Keras's choice), so that its data can pad to fixed lengths
        (`apps.common.buckets`)."""
        return set_jit_compile(model, self.jit_compile)

    def fit(self, model: keras.Model, train_data, *, epochs: int, **kwargs) -> keras.callbacks.History:
        """`apps.common.training.fit` with the run's verbosity, backups, logs, patience, XLA,
        time budget and callbacks (or the weights a fit on another backend handed back)."""
        if self.fitted is not None:
            if model.optimizer is not None and not model.optimizer.built:
                model.optimizer.build(model.trainable_variables)  # the file holds its state too
            model.load_weights(self.fitted.model_path)
            self.stopped_early = self.fitted.stopped_early
            self.history = self.fitted.as_history(model)
            return self.history
        budget = [TimeBudget(self.minutes)] if self.minutes else []
        kwargs["callbacks"] = [*kwargs.get("callbacks", []), *self.callbacks, *budget]
        with Stopwatch() as watch:
            self.history = fit(
                model, train_data, epochs=epochs, verbose=self.verbose, backup_dir=self.backup_dir,
                checkpoint_every=self.checkpoint_every, fresh=self.fresh, log_dir=self.log_dir,
                patience=self.patience, jit_compile=self.jit_compile, **kwargs,
            )
        self.stopped_early = any(callback.stopped_early for callback in budget)
        if self.hand_back_to is not None:
            hand_back(model, self.history, self.stopped_early, watch.seconds, self.hand_back_to)
        return self.history


class App(Generic[D, E]):
    """Base of the six apps (see the module doc). Subclasses set the class attributes."""

    name: ClassVar[str]
    help: ClassVar[dict[str, str]]  # verb -> one line for --help
    Train: ClassVar[type[TrainConfig]]
    Evaluate: ClassVar[type[ExportConfig]]
    Predict: ClassVar[type[ExportConfig]]
    Explain: ClassVar[type[ExportConfig] | None] = None
    # The serving_default inputs, to recognise exports written before they named their app.
    serving_inputs: ClassVar[tuple[str, ...]]
    # Whether serving_default's string outputs are generated text ("" for a blank input).
    generates_text: ClassVar[bool] = False
    # `train` arguments for a run of about a minute (`gru-suite reproduce --quick`),
    # and for one of seconds on a slice of the sample (the contract tests).
    quick_args: ClassVar[tuple[str, ...]] = ()
    smoke_args: ClassVar[tuple[str, ...]] = ()
    # `predict` arguments a model trained on the sample answers (the first is `explain`'s).
    example_inputs: ClassVar[tuple[str, ...]] = ()
    # The app's task in a family that one name reaches with `--task` (see `apps.registry`).
    task: ClassVar[Task | None] = None
    # Why the app's model fits on TensorFlow only (`--backend`), or None where its Keras model
    # is written in keras.ops and fits on every backend in `apps.common.backend_fit.BACKENDS`.
    tensorflow_only: ClassVar[str | None] = None

    def load_data(self, config: Config) -> D:
        raise NotImplementedError

    def held_out(self, data: D) -> E:
        """The part of `data` that a training's own evaluation scores (by default all of it)."""
        return data  # type: ignore[return-value]  # apps whose D and E differ override this

    def evaluation_data(self, config: Config) -> E:
        """The data `gru-suite evaluate` scores (by default `load_data`'s held-out part)."""
        return self.held_out(self.load_data(config))

    def train(self, config: TrainConfig, data: D, fitting: Fitting) -> Trained:
        raise NotImplementedError

    def evaluate(self, export: Export, data: E, config: Config, output_dir: Path | None) -> Evaluation:
        """Scores `export` on held-out `data`; plots go to `output_dir` (None: where the config says)."""
        raise NotImplementedError

    def predict(self, export: Export, config: ExportConfig) -> list:
        raise NotImplementedError

    def explain(self, export: Export, config: ExportConfig) -> Any:
        raise NotImplementedError

    def portable_serving(self, export: Export) -> Serving:
        """The signatures a LiteRT or ONNX file of `export` holds, rebuilt in this process from its
        Keras model and metadata, for `gru-suite export` to convert (`apps.common.formats`)."""
        raise InputError(f"{self.name}: its exports do not convert to LiteRT or ONNX yet.")

    def from_file(self, export: Export) -> Export:
        """A LiteRT or ONNX file's `Export` made to answer as the SavedModel does: by default as it
        is, where the file serves the SavedModel's own signature."""
        return export

    def demo(self, export: Export) -> str:
        """A one-line account of what `export` says to a few inputs (for `reproduce`)."""
        raise NotImplementedError

    def serving_example(self, export: Export) -> dict[str, Any]:
        """One instance of `serving_default`'s inputs, as JSON values, that `export` answers.

        What a REST client would send (the server's tests and load benchmark
        use it); by default the first example input under the first input name.
        """
        return {self.serving_inputs[0]: self.example_inputs[0]}

    def page(self, page: Any) -> None:
        """Builds the app's tab of `gru-suite serve`'s demo page out of Gradio components.

        `page` is an `apps.serve.page.PageContext`: `page.export()` is the
        version served now, `page.handler(fn)` wraps an event function.
        """
        raise NotImplementedError

    def evaluation_config(self, config: TrainConfig) -> Config:
        """The `Evaluate` settings a training's own evaluation uses: the ones it shares with `Train`."""
        shared = {
            field.name: getattr(config, field.name)
            for field in dataclasses.fields(self.Evaluate)
            if hasattr(config, field.name)
        }
        return self.Evaluate(**shared)
