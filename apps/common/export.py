"""Versioned, all-or-nothing SavedModel exports in TF Serving's layout.

`saved_models/<app>/<version>/` holds one complete SavedModel. An export is
written to a hidden temporary folder beside the versions and renamed into the
next free integer version only when complete, so a reader never sees half a
model and no existing version is ever overwritten.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Callable

import keras
import tensorflow as tf
from absl import logging as absl_logging

from apps.common.distributed import is_chief
from apps.common.errors import InputError, first_line
from apps.common.files import publishable_folder

DEFAULT_ROOT = Path("saved_models")
_PARTIAL_PREFIX = ".partial-"
# TF Serving's folder for files beside the SavedModel proper (its warm-up
# requests live there too); what made the export is recorded in it.
METADATA_FILE = Path("assets.extra") / "gru_suite.json"
# Files beside the SavedModel that `tf.saved_model.load` ignores: the Keras
# model (`explain`, other formats) and what rebuilds its serving function.
EXTRA_DIR = "extra"


def existing_versions(app_dir: Path) -> list[int]:
    if not app_dir.is_dir():
        return []
    return sorted(int(p.name) for p in app_dir.iterdir() if p.name.isdigit())


def _remove_abandoned_partials(app_dir: Path) -> None:
    """Deletes temporary folders left by exports whose process has died."""
    for partial in app_dir.glob(_PARTIAL_PREFIX + "*"):
        pid = partial.name[len(_PARTIAL_PREFIX):].split("-")[0]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            shutil.rmtree(partial, ignore_errors=True)


def write_versioned(app: str, write: Callable[[Path], None], root: Path | str = DEFAULT_ROOT) -> Path:
    """Calls `write(tmp_dir)` and publishes the result as the next version.

    Returns the version folder. Two exports at once get two versions: the
    rename into an existing, non-empty version fails and the next is tried.
    """
    app_dir = Path(root) / app
    app_dir.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_partials(app_dir)
    partial = publishable_folder(app_dir, prefix=f"{_PARTIAL_PREFIX}{os.getpid()}-")
    try:
        write(partial)
        while True:
            version = (existing_versions(app_dir) or [0])[-1] + 1
            target = app_dir / str(version)
            try:
                target.mkdir()
            except FileExistsError:
                continue
            try:
                # Replaces the empty folder just claimed, atomically.
                os.replace(partial, target)
            except OSError:
                target.rmdir()
                raise
            return target
    finally:
        if partial.exists():
            shutil.rmtree(partial, ignore_errors=True)


def with_checked_shapes(function: tf.types.experimental.PolymorphicFunction) -> tf.types.experimental.PolymorphicFunction:
    """`function` behind in-graph checks of its inputs' shapes against its `input_signature`.

    A loaded SavedModel's signature checks its inputs' dtypes but not their
    shapes: a tensor of the wrong rank, or inputs of different batch sizes,
    reached the graph, which answered in the wrong shape or aborted the
    process. Each check fails with an `InvalidArgumentError` naming the inputs
    ("Shape of tensor text [1,2] is not compatible with expected shape [?]").
    Every input whose first dimension is open is a batch of the same examples.
    """
    specs = function.input_signature
    batched = [index for index, spec in enumerate(specs) if spec.shape.rank and spec.shape[0] is None]
    batch_error = f"{', '.join(specs[index].name for index in batched)}: every input needs the same batch size"

    @tf.function(input_signature=specs)
    def checked(*inputs: tf.Tensor):
        inputs = [tf.ensure_shape(value, spec.shape, name=f"{spec.name}_shape") for value, spec in zip(inputs, specs)]
        if len(batched) > 1:
            sizes = tf.stack([tf.shape(inputs[index])[0] for index in batched])
            same = tf.debugging.assert_equal(sizes, sizes[0], message=batch_error, summarize=len(batched))
            with tf.control_dependencies([same]):
                inputs = [tf.identity(value) for value in inputs]
        return function(*inputs)

    return checked


def export_serving_model(
    app: str,
    serve_fn: tf.types.experimental.PolymorphicFunction,
    tracked: list,
    root: Path | str = DEFAULT_ROOT,
    extras: Callable[[Path], None] | None = None,
    more_endpoints: dict[str, tf.types.experimental.PolymorphicFunction] | None = None,
    metadata: dict | None = None,
) -> Path | None:
    """Exports `serve_fn` as the `serving_default` signature of a new version.

    Returns the version folder, or None in a multi-worker run's workers other
    than the chief: the chief exports for all of them.

    Args:
        app: The app name, the folder under `root`.
        serve_fn: A `tf.function` with an `input_signature` whose TensorSpecs
            are named (the signature's input names) and which returns a dict
            (the output names).
        tracked: Keras models / layers and other trackables the endpoints use.
        extras: Optional `extras(version_dir)` that writes more files (a
            `.keras` model for introspection, say) into the version before
            it is published; `tf.saved_model.load` ignores them.
        more_endpoints: Further signatures by name, like `serve_fn`
            (attention weights for `explain`, a chatbot's `converse`).
        metadata: JSON-ready facts written to `assets.extra/gru_suite.json`
            (the app that made the export, its settings).
    """
    if not is_chief():
        print(f"{app}: not the chief worker, so not exporting (the chief does)")
        return None
    endpoints = {"serving_default": serve_fn, **(more_endpoints or {})}

    def write(directory: Path) -> None:
        archive = keras.export.ExportArchive()
        for resource in tracked:
            archive.track(resource)
        for name, function in endpoints.items():
            archive.add_endpoint(name, with_checked_shapes(function))
        archive.write_out(str(directory), verbose=False)
        if metadata is not None:
            (directory / METADATA_FILE).parent.mkdir(exist_ok=True)
            (directory / METADATA_FILE).write_text(json.dumps(metadata, indent=2))
        if extras is not None:
            extras(directory)

    return write_versioned(app, write, root)


def read_metadata(version_dir: Path | str) -> dict:
    """What made an export (`METADATA_FILE`), or {} for an export written without it."""
    path = Path(version_dir) / METADATA_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise InputError(f"{path}: unreadable export metadata ({first_line(error)})") from None


def load_keras_model(path: Path | str) -> keras.Model:
    """Loads a `.keras` file in Keras's safe mode.

    Safe mode refuses to deserialize Python code (a `Lambda` layer's bytecode),
    so loading a model file runs no code that came with it.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such .keras file.")
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except ValueError as error:
        if "safe_mode" in str(error) or "Lambda" in str(error):
            raise InputError(
                f"{path}: refused: the model carries Python code (a Lambda layer), "
                "which is never loaded from a file."
            ) from error
        raise


def save_extra_model(model: keras.Model, version_dir: Path) -> None:
    """Writes `model` as `extra/model.keras` in an export being written."""
    extra = Path(version_dir) / EXTRA_DIR
    extra.mkdir(exist_ok=True)
    model.save(extra / "model.keras")


def load_extra_model(version_dir: Path) -> keras.Model:
    """The Keras model an export keeps in `extra/model.keras` (see `save_extra_model`)."""
    path = Path(version_dir) / EXTRA_DIR / "model.keras"
    if not path.is_file():
        raise InputError(f"{version_dir}: the export keeps no {EXTRA_DIR}/model.keras (it was made "
                         "before exports kept their Keras model; train it again).")
    return load_keras_model(path)


def version_folder(model_dir: Path | str) -> Path:
    """`model_dir` if it is a SavedModel, else its newest numbered version."""
    model_dir = Path(model_dir)
    if (model_dir / "saved_model.pb").is_file():
        return model_dir
    versions = existing_versions(model_dir)
    if not versions:
        raise InputError(
            f"{model_dir}: not a SavedModel folder (no saved_model.pb) and "
            "no numbered versions inside it."
        )
    return model_dir / str(versions[-1])


def load_exported(model_dir: Path | str):
    """Loads an export (or the newest version inside `model_dir`).

    The result's `signatures["serving_default"]` is the serving function; keep
    the loaded object alive while using it.
    """
    model_dir = version_folder(model_dir)
    # Exports are saved without gradient functions (serving needs none), and
    # TensorFlow warns about that at every load.
    verbosity = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.ERROR)
    try:
        loaded = tf.saved_model.load(str(model_dir))
    finally:
        absl_logging.set_verbosity(verbosity)
    if "serving_default" not in loaded.signatures:
        raise InputError(f"{model_dir}: the SavedModel has no serving_default signature.")
    return loaded
