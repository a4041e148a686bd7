"""Running an app: the commands every registered app gets, and the same as library calls.

`register_app(app)` turns an `apps.common.app.App` into `gru-suite
train|evaluate|predict APP` (and `explain APP`). The sequence every training
follows (seed, data, stopwatch around the fit, evaluation through the serving
signatures, export, report) is `run_train`, here and nowhere else;
`train_app`, `evaluate_app` and `settings_from` are the library calls that
benchmarks and scripts use.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import keras

from apps.common.app import App, Evaluation, Export, Fitting, Trained, signature_inputs
from apps.common.backend_fit import HandedBack, fit_on_backend
from apps.common.config import Config, add_arguments, arguments_configurer, from_arguments
from apps.common.errors import InputError
from apps.common.export import DEFAULT_ROOT, export_serving_model, load_exported, read_metadata, version_folder
from apps.common.formats import description_path, load_file_export, write_format
from apps.common.settings import ExportConfig, FormatConfig, TrainConfig
from apps.common.training import Stopwatch, TrainReport, publish_report, run_directory, set_seed
from apps.registry import REGISTRY, Command, load_app_packages, register

C = TypeVar("C", bound=Config)
# The training report's fact that `--minutes` ended the fit (its last epoch is cut short).
STOPPED_BY_BUDGET = "stopped by --minutes"


def load_export(app: App, model: Path | None) -> Export:
    """Loads `model` (default saved_models/APP), refusing another app's export in one line."""
    path = Path(model) if model is not None else DEFAULT_ROOT / app.name
    flag = f"--model {path}"
    if not path.exists():
        raise InputError(f"{flag}: no such folder (train one with `gru-suite train {app.name}`).")
    if path.is_file():
        export = load_file_export(path)
        if export.metadata.get("app") != app.name:
            raise InputError(f"{flag}: this is a {export.metadata.get('app')} export, not a {app.name} one.")
        return app.from_file(export)
    folder = version_folder(path)
    loaded = load_exported(folder)
    metadata = read_metadata(folder)
    if metadata:
        made_by = metadata.get("app")
        if made_by != app.name:
            raise InputError(f"{flag}: this is a {made_by} export, not a {app.name} one.")
    else:
        inputs = sorted(signature_inputs(loaded.signatures["serving_default"]))
        if inputs != sorted(app.serving_inputs):
            raise InputError(
                f"{flag}: not a {app.name} export (its serving_default takes {', '.join(inputs)}, "
                f"a {app.name} export takes {', '.join(app.serving_inputs)})."
            )
        metadata = {"app": app.name}
    return Export(dict(loaded.signatures), metadata, folder, keep_alive=loaded)


def run_train(app: App, config: TrainConfig) -> TrainReport:
    """Seed, data, fit (timed), evaluation through the serving signatures, export, report.

    With `--backend` other than this process's, the fit runs in a process of
    its own first (`apps.common.backend_fit`) and the training here takes its
    weights.
    """
    if config.backend != "tensorflow" and app.tensorflow_only:
        raise InputError(f"--backend {config.backend}: {app.name} fits on TensorFlow only: "
                         f"{app.tensorflow_only}.")
    set_seed(config.seed)
    data = app.load_data(config)
    run_dir = run_directory(app.name, config)
    with Stopwatch() as watch:
        fitted = None
        if config.backend != keras.backend.backend():
            fitted = fit_on_backend(app.name, config, run_dir / f"fitted-on-{config.backend}")
        fitting = Fitting(config, run_dir, fitted=fitted)
        trained = app.train(config, data, fitting)
    evaluation = app.evaluate(
        Export.of(trained, app.name), app.held_out(data), app.evaluation_config(config), run_dir
    )
    export_path = None
    if trained.export_skipped:
        trained.extra["export"] = f"skipped: {trained.export_skipped}"
    elif not config.no_export:
        serving = trained.serving
        endpoints = dict(serving.endpoints)
        export_path = export_serving_model(
            app.name, endpoints.pop("serving_default"), serving.tracked, config.export_dir,
            extras=serving.extras, more_endpoints=endpoints,
            metadata={"app": app.name, **serving.metadata,
                      "evaluation": {evaluation.metric: evaluation.value, "data": data.name}},
        )
    report = TrainReport(
        app=app.name, data=data.name, cell=config.cell, metric=evaluation.metric,
        value=evaluation.value, train_seconds=watch.seconds, epochs=_epochs_run(trained, fitting),
        export_path=str(export_path) if export_path else None,
        extra={**trained.extra, **{key: _rounded(value) for key, value in evaluation.details.items()}},
        history=_history(fitting.history),
    )
    if fitting.stopped_early:
        report.extra[STOPPED_BY_BUDGET] = True
    if fitted is not None:
        report.extra["backend"] = f"fitted on {fitted.backend} in its own process ({fitted.seconds:.1f} s)"
    return publish_report(report, config.report, trained.model)


def fit_only(app: App, config: TrainConfig, hand_back_to: Path) -> None:
    """`run_train`'s seed, data and training up to the end of the fit, whose model goes to
    `hand_back_to` (the process `apps.common.backend_fit` starts)."""
    set_seed(config.seed)
    data = app.load_data(config)
    fitting = Fitting(config, run_directory(app.name, config), hand_back_to=hand_back_to)
    try:
        app.train(config, data, fitting)
    except HandedBack:
        return
    raise InputError(f"{app.name}: its training ended without a fit to hand back.")


def _epochs_run(trained: Trained, fitting: Fitting) -> int:
    """Epochs the model trained for: fewer than asked where `--patience` stopped it."""
    history = fitting.history
    if history is None or not history.epoch:
        return trained.epochs
    return min(trained.epochs, history.epoch[-1] + 1)


def _history(history: keras.callbacks.History | None) -> dict[str, list[float]]:
    """The per-epoch logs of a fit, as JSON-ready floats (empty where the app fitted none)."""
    if history is None:
        return {}
    return {key: [float(value) for value in values] for key, values in history.history.items()}


def _rounded(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


def run_evaluate(app: App, config: ExportConfig) -> Evaluation:
    export = load_export(app, config.model)
    evaluation = app.evaluate(export, app.evaluation_data(config), config, None)
    print(f"{export.path}: {evaluation.summary}")
    return evaluation


# `gru-suite export APP`'s help line, the same for every app.
FORMAT_HELP = "write the export as a LiteRT or ONNX file beside its SavedModel"


def run_export_format(app: App, config: FormatConfig) -> Path:
    """Writes the export's portable signatures as `config.format` into its version folder."""
    if config.model is not None and Path(config.model).is_file():
        raise InputError(f"--model {config.model}: give the SavedModel's folder to convert, not a file.")
    export = load_export(app, config.model)
    path = write_format(app.portable_serving(export), export.path, config.format, config.quantize == "dynamic")
    print(f"wrote {path} and {description_path(path).name} ({path.stat().st_size / 1e6:.2f} MB)")
    return path


def _configurer(app: App, config_class: type[Config]) -> Callable[[argparse.ArgumentParser], None]:
    """Adds the config's flags, and `--task` for an app in a family."""
    add_config = arguments_configurer(config_class)
    if app.task is None:
        return add_config
    task = app.task

    def configure(parser: argparse.ArgumentParser) -> None:
        add_config(parser)
        members = REGISTRY.families[task.family]
        described = "; ".join(f"{name}: {other.help}" for name, (_, other) in sorted(members.items()))
        parser.add_argument("--task", choices=sorted(members), default=task.name,
                            help=f"{described} (default: {task.name})")

    return configure


def _runner(app: App, config_class: type[Config], action: Callable[[App, Any], Any]):
    def run(args: argparse.Namespace) -> Any:
        return action(app, from_arguments(config_class, args))

    return run


def registered_app(name: str) -> App:
    """The app registered under `name`."""
    return REGISTRY.app_objects[name]


def settings_from(config_class: type[C], argv: Sequence[str]) -> C:
    """`config_class` filled from command-line words, as `gru-suite` fills it (bad ones exit 2)."""
    parser = argparse.ArgumentParser(prog=config_class.__name__)
    add_arguments(parser, config_class)
    return from_arguments(config_class, parser.parse_args(list(argv)))


def train_app(name: str, argv: Sequence[str]) -> TrainReport:
    """`gru-suite train NAME ARGV...` as a library call, for benchmarks and scripts."""
    load_app_packages()
    app = registered_app(name)
    return run_train(app, settings_from(app.Train, argv))


def evaluate_app(name: str, argv: Sequence[str]) -> Evaluation:
    """`gru-suite evaluate NAME ARGV...` as a library call."""
    load_app_packages()
    app = registered_app(name)
    return run_evaluate(app, settings_from(app.Evaluate, argv))


def register_app(app: App) -> App:
    """Registers `train`, `evaluate`, `predict` (and `explain`) for `app`."""
    REGISTRY.add_app(app.name, app, app.task)
    verbs: list[tuple[str, type[Config], Callable[[App, Any], Any]]] = [
        ("train", app.Train, run_train),
        ("evaluate", app.Evaluate, run_evaluate),
        ("predict", app.Predict, lambda a, c: a.predict(load_export(a, c.model), c)),
    ]
    if type(app).portable_serving is not App.portable_serving:
        verbs.append(("export", FormatConfig, run_export_format))
    if app.Explain is not None:
        verbs.append(("explain", app.Explain, lambda a, c: a.explain(load_export(a, c.model), c)))
    for verb, config_class, action in verbs:
        register(Command(
            verb, app.name, app.help.get(verb, FORMAT_HELP), _configurer(app, config_class),
            _runner(app, config_class, action),
            quick_args=app.quick_args if verb == "train" else (),
            demo=(lambda path, a=app: a.demo(load_export(a, Path(path)))) if verb == "train" else None,
        ))
    return app

