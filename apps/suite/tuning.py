"""`gru-suite tune APP`: KerasTuner's random search over an app's own settings.

The search space is the settings that declare a `SearchRange` (units, learning
rate, dropout, embedding size, ...: `apps.common.settings`), read from the
app's `Train` class, so there is no second list to keep in step. Each trial is
the app's own training (`App.train`, through `Fitting`) on its validation
split; the objective is the lowest validation loss the trial reached. Trials
log to TensorBoard, with their settings for the HParams dashboard, under
`DIRECTORY/logs/`.
"""

from __future__ import annotations

import dataclasses
import math
import shlex
import time
from pathlib import Path
from typing import Any

import keras
import keras_tuner
import tensorflow as tf
from keras_tuner.engine.base_tuner import BaseTuner
from keras_tuner.engine.trial import TrialStatus
from tensorboard.plugins.hparams import api as hparams_api

from apps.common.app import App, Fitting
from apps.common.config import flag_name, search_fields
from apps.common.errors import InputError
from apps.common.settings import TrainConfig
from apps.common.training import Stopwatch, set_seed

OBJECTIVE = "val_loss"


@dataclasses.dataclass
class TrialResult:
    """One finished trial: its settings and what it reached."""

    trial_id: str
    values: dict[str, Any]
    val_loss: float
    epochs: int
    seconds: float


def search_space(base: TrainConfig) -> keras_tuner.HyperParameters:
    """KerasTuner hyperparameters for every setting of `base`'s class with a `SearchRange`,
    each defaulting to its value in `base` (the first trial runs `base` itself)."""
    space = keras_tuner.HyperParameters()
    for field, search in search_fields(type(base)):
        sampling = "log" if search.log else "linear"
        default = min(max(getattr(base, field.name), search.low), search.high)
        if field.type in ("int", int):
            space.Int(field.name, int(search.low), int(search.high), sampling=sampling, default=int(default))
        else:
            space.Float(field.name, search.low, search.high, sampling=sampling, default=float(default))
    return space


class DefaultsFirstRandomSearch(keras_tuner.oracles.RandomSearchOracle):
    """Random search whose first trial is the search space's defaults (the settings the search
    starts from): the baseline the other trials are read against."""

    def populate_space(self, trial_id: str) -> dict[str, Any]:
        if not self.trials:
            return {"status": TrialStatus.RUNNING, "values": dict(self.hyperparameters.values)}
        return super().populate_space(trial_id)


class AppTuner(BaseTuner):
    """Runs each trial as the app's own training of `base` with the trial's values."""

    def __init__(self, app: App, base: TrainConfig, data: Any, deadline: float | None, **kwargs):
        super().__init__(**kwargs)
        self.app, self.base, self.data, self.deadline = app, base, data, deadline
        self.results: list[TrialResult] = []

    def run_trial(self, trial, *args, **kwargs) -> dict[str, float]:
        values = dict(trial.hyperparameters.values)
        trial_dir = Path(self.project_dir) / f"trial_{trial.trial_id}"
        log_dir = Path(self.project_dir) / "logs" / f"trial_{trial.trial_id}"
        config = dataclasses.replace(self.base, **values, run_dir=trial_dir, log_dir=log_dir, fresh=True,
                                     no_export=True)
        keras.backend.clear_session()
        set_seed(config.seed)
        fitting = Fitting(config, trial_dir)
        with Stopwatch() as watch:
            self.app.train(config, self.data, fitting)
        history = fitting.history.history if fitting.history is not None else {}
        if OBJECTIVE not in history:
            raise InputError(f"{self.app.name}: this training has no validation loss to tune on.")
        best = float(min(history[OBJECTIVE]))
        with tf.summary.create_file_writer(str(log_dir)).as_default():
            hparams_api.hparams(values, trial_id=trial.trial_id)
            tf.summary.scalar(OBJECTIVE, best, step=0)
        self.results.append(TrialResult(trial.trial_id, values, best, len(history[OBJECTIVE]), watch.seconds))
        if self.deadline is not None and time.monotonic() >= self.deadline:
            self.oracle.max_trials = len(self.oracle.trials)  # start no trial after this one
        return {OBJECTIVE: best}


def _flag_value(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def train_command(app: App, train_args: list[str], values: dict[str, Any]) -> str:
    """The `gru-suite train` command line of `train_args` with a trial's `values` in place of
    theirs (exact, not rounded)."""
    fields = {field.name: field for field, _ in search_fields(app.Train)}
    tuned = {flag_name(fields[name]) for name in values}
    kept, skip = [], False
    for word in train_args:
        if skip:
            skip = False
        elif word in tuned:
            skip = True  # and its value
        elif word.split("=", 1)[0] not in tuned:
            kept.append(word)
    flags = [part for name, value in values.items() for part in (flag_name(fields[name]), repr(value))]
    return shlex.join(["gru-suite", "train", app.name, *kept, *flags])


def tune(app: App, base: TrainConfig, max_trials: int, minutes: float | None, directory: Path,
         seed: int = 0) -> list[TrialResult]:
    """Runs the search from `base` (the app's train settings); returns the trials in the order
    they ran, the defaults' first. Trials go to `directory/APP/`."""
    space = search_space(base)
    if not space.space:
        raise InputError(f"{app.name}: no setting declares a search range.")
    oracle = DefaultsFirstRandomSearch(
        objective=keras_tuner.Objective(OBJECTIVE, "min"), max_trials=max_trials, seed=seed,
        hyperparameters=space,
    )
    deadline = None if minutes is None else time.monotonic() + 60 * minutes
    tuner = AppTuner(app, base, app.load_data(base), deadline, oracle=oracle, directory=str(directory),
                     project_name=app.name, overwrite=True)
    # After the tuner, which empties DIRECTORY/APP: the HParams dashboard's columns.
    with tf.summary.create_file_writer(str(Path(tuner.project_dir) / "logs")).as_default():
        hparams_api.hparams_config(hparams=[hparams_api.HParam(name) for name in space.values],
                                   metrics=[hparams_api.Metric(OBJECTIVE)])
    tuner.search()
    return tuner.results


def trials_table(results: list[TrialResult]) -> list[dict[str, Any]]:
    """Rows for `format_table`, best trial first."""
    rows = []
    for result in sorted(results, key=lambda r: (math.isnan(r.val_loss), r.val_loss)):
        rows.append({"trial": result.trial_id, **{k: _flag_value(v) for k, v in result.values.items()},
                     "best val_loss": f"{result.val_loss:.4f}", "epochs": result.epochs,
                     "seconds": f"{result.seconds:.0f}"})
    return rows
