"""Fitting on another Keras backend: the fit runs in a process of its own, the weights come back.

Keras picks its backend when it is first imported, so a TensorFlow process
cannot fit on JAX. `gru-suite train APP --backend jax` therefore runs the
app's training in a child process with `KERAS_BACKEND=jax`
(`apps.common.backend_worker`) up to the end of its fit: the same data,
vocabulary and model from the same settings and seed, tf.data and
tensorflow-text feeding it. That process saves the fitted model as a `.keras`
file beside the fit's history, and stops: what follows a fit (serving
functions, evaluation, the export) is TensorFlow's. The TensorFlow process
then runs the same training with `Fitting` loading those weights instead of
fitting, so the export is the SavedModel a TensorFlow training writes.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import keras

from apps.common.config import Config, to_arguments
from apps.common.errors import InputError

# What the child process leaves in its hand-back folder.
_MODEL = "model.keras"
_FACTS = "fit.json"
# `--backend`: the Keras backends an app's fit can run on, and the package each needs
# (the extra that installs it has the backend's name).
BACKEND_PACKAGES = {"tensorflow": "tensorflow", "jax": "jax"}
BACKENDS = tuple(BACKEND_PACKAGES)


class HandedBack(Exception):
    """Raised by the child's `Fitting.fit` once the fitted model is saved: nothing after the fit
    runs on the other backend."""


@dataclasses.dataclass
class FittedElsewhere:
    """A fit that ran in another process: its model file and what its `History` held."""

    model_path: Path
    history: dict[str, list[float]]
    epochs: list[int]
    stopped_early: bool
    backend: str
    seconds: float

    def as_history(self, model: keras.Model) -> keras.callbacks.History:
        history = keras.callbacks.History()
        history.set_model(model)
        history.history = {key: list(values) for key, values in self.history.items()}
        history.epoch = list(self.epochs)
        return history


def hand_back(model: keras.Model, history: keras.callbacks.History, stopped_early: bool,
              seconds: float, folder: Path) -> None:
    """Saves the fitted `model` and the fit's facts into `folder` and raises `HandedBack`."""
    folder.mkdir(parents=True, exist_ok=True)
    model.save(folder / _MODEL)
    facts = {
        "history": {key: [float(value) for value in values] for key, values in history.history.items()},
        "epochs": [int(epoch) for epoch in history.epoch],
        "stopped_early": stopped_early,
        "backend": keras.backend.backend(),
        "seconds": seconds,
    }
    (folder / _FACTS).write_text(json.dumps(facts))
    raise HandedBack


def fit_on_backend(app_name: str, config: Config, folder: Path) -> FittedElsewhere:
    """Runs `app_name`'s training with `config` up to its fit on `config.backend`, in a child
    process whose output is this one's; returns what it handed back in `folder`."""
    backend = config.backend
    package = BACKEND_PACKAGES[backend]
    if importlib.util.find_spec(package) is None:
        raise InputError(f"--backend {backend}: {package} is not installed "
                         f"(pip install 'gru-suite[{backend}]').")
    for stale in (folder / _MODEL, folder / _FACTS):
        stale.unlink(missing_ok=True)
    command = [sys.executable, "-m", "apps.common.backend_worker", app_name, str(folder),
               *to_arguments(config)]
    completed = subprocess.run(command, env={**os.environ, "KERAS_BACKEND": backend}, check=False)
    if completed.returncode != 0 or not (folder / _FACTS).is_file():
        raise InputError(f"--backend {backend}: the fit on {backend} failed (exit "
                         f"{completed.returncode}); its own error is printed above.")
    facts = json.loads((folder / _FACTS).read_text())
    return FittedElsewhere(folder / _MODEL, facts["history"], facts["epochs"], facts["stopped_early"],
                           facts["backend"], facts["seconds"])
