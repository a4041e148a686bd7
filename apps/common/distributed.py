"""tf.distribute strategies for `--strategy`, and training across workers.

`default` trains on one device, `mirrored` on all local GPUs (Keras's `fit`
splits each batch and reduces the metrics), `multi-worker` on every worker
named in `TF_CONFIG` (MultiWorkerMirroredStrategy: synchronous data
parallelism, gradients all-reduced each step).

Keras 3's `fit` does not run under MultiWorkerMirroredStrategy: its per-replica
reduction of the step's logs fails on scalars (keras-team/keras#20585). So
`fit_across_workers` runs the loop itself: a data-sharded distributed dataset,
`strategy.run(model.train_step)` in a `tf.function`, metrics read across
workers, and the same Keras callbacks (progress bar, BackupAndRestore, ...).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from gru_core.keras_private import resumed_epoch

from apps.common.errors import InputError


def _multi_worker() -> tf.distribute.Strategy:
    _check_tf_config()
    try:
        return tf.distribute.MultiWorkerMirroredStrategy()
    except RuntimeError as error:
        if "program startup" not in str(error):
            raise
        raise InputError(
            "A multi-worker strategy must be set up before TensorFlow runs anything in the "
            "process: start each worker as its own `gru-suite train ...` command."
        ) from error


STRATEGIES: dict[str, Callable[[], tf.distribute.Strategy]] = {
    "default": tf.distribute.get_strategy,
    "mirrored": tf.distribute.MirroredStrategy,
    "multi-worker": _multi_worker,
}


def _check_tf_config() -> None:
    """Names what is wrong with `TF_CONFIG` before TensorFlow waits on a bad cluster."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise InputError(
            "Multi-worker training needs TF_CONFIG in the environment, e.g. "
            '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
            '"task": {"type": "worker", "index": 0}} (see docs/training.md).'
        )
    try:
        config = json.loads(raw)
    except json.JSONDecodeError as error:
        raise InputError(f"TF_CONFIG is not valid JSON: {error}.") from error
    workers = config.get("cluster", {}).get("worker") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(workers, list) or not workers:
        raise InputError('TF_CONFIG has no "cluster": {"worker": [...]} list of host:port addresses.')
    if not isinstance(task, dict) or "type" not in task or "index" not in task:
        raise InputError('TF_CONFIG has no "task": {"type": "worker", "index": N} for this process.')
    if not isinstance(task["index"], int) or task["index"] < 0:
        raise InputError(f'TF_CONFIG task index {task["index"]!r} is not a non-negative integer.')
    if task["type"] == "worker" and task["index"] >= len(workers):
        raise InputError(
            f"TF_CONFIG task index {task['index']} is outside the {len(workers)} workers listed."
        )


_made: dict[str, tf.distribute.Strategy] = {}


def make_strategy(name: str) -> tf.distribute.Strategy:
    """The strategy for `--strategy NAME`; build and compile models in its scope().

    One instance per name and process: a multi-worker strategy has to exist
    before TensorFlow runs any op, so the CLI creates it first and the app's
    later call gets the same one. `--batch-size` is the global batch, split
    across all replicas of all workers.
    """
    if name not in STRATEGIES:
        raise InputError(f"Unknown strategy {name!r}; expected one of {sorted(STRATEGIES)}.")
    if name not in _made:
        _made[name] = STRATEGIES[name]()
    return _made[name]


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_chief() -> bool:
    """False only in a multi-worker run's workers other than the chief (worker 0).

    Only the chief exports; every worker holds the same weights.
    """
    strategy = _made.get("multi-worker")
    return strategy is None or strategy.extended.should_checkpoint


def worker_description(strategy: tf.distribute.Strategy) -> str:
    """"worker I of N" (the task type, its index, the cluster's size) for reports."""
    resolver = strategy.cluster_resolver
    tasks = sum(len(addresses) for addresses in resolver.cluster_spec().as_dict().values())
    return f"{resolver.task_type} {resolver.task_id} of {tasks}"


def backup_folder(backup_dir: Path, strategy: tf.distribute.Strategy) -> Path:
    """Where this process backs up its training state.

    The chief uses `backup_dir`; the other workers of a multi-worker run use a
    sibling named after their task, so workers on one host or on shared
    storage never write the same files. Every worker holds the same state.
    """
    if not is_multi_worker(strategy) or strategy.extended.should_checkpoint:
        return backup_dir
    resolver = strategy.cluster_resolver
    return backup_dir.with_name(f"{backup_dir.name}-{resolver.task_type}-{resolver.task_id}")


def fit_across_workers(
    model: keras.Model,
    x: tf.data.Dataset | Any,
    y: Any = None,
    *,
    epochs: int,
    batch_size: int = 32,
    shuffle: bool = True,
    validation_data: tf.data.Dataset | tuple | None = None,
    callbacks: list[keras.callbacks.Callback] | None = None,
    verbose: int = 1,
) -> keras.callbacks.History:
    """`model.fit` for a model built and compiled under a multi-worker strategy.

    `x` is a batched Dataset of `(inputs, targets)` whose batches are global
    batches, or arrays with `y`, `batch_size` and `shuffle` as in `fit`. Every
    worker must build the same dataset in the same order (same seed): each
    global batch is split between the workers' replicas (`AutoShardPolicy.DATA`),
    the gradients are summed across them, so every worker ends each step with
    the same weights. Metrics and validation are computed over all workers.
    The progress bar prints on the chief only.
    """
    strategy = model.distribute_strategy
    train_data = _as_batches(x, y, batch_size, shuffle)
    validation = None if validation_data is None else _as_batches(*_pair(validation_data), batch_size, False)
    steps = _count_batches(train_data)
    # One endless iterator, so that every worker runs the same number of steps
    # and the last, short batch of an epoch is just another step.
    iterator = iter(strategy.experimental_distribute_dataset(train_data.repeat()))

    @tf.function
    def train_one_step(iterator):
        logs = strategy.run(model.train_step, args=(next(iterator),))
        return tf.nest.map_structure(lambda value: strategy.reduce("MEAN", value, axis=None), logs)

    @tf.function(reduce_retracing=True)
    def test_one_step(batch):
        strategy.run(model.test_step, args=(batch,))

    with strategy.scope():
        if not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
    history = keras.callbacks.History()
    callback_list = keras.callbacks.CallbackList(
        [*(callbacks or []), history], add_progbar=verbose != 0 and is_chief(), model=model,
        verbose=verbose, epochs=epochs, steps=steps,
    )
    model.stop_training = False
    callback_list.on_train_begin()
    # BackupAndRestore passes the epoch to resume from, as it does to Model.fit.
    initial_epoch = resumed_epoch(model)
    logs: dict[str, Any] = {}
    for epoch in range(initial_epoch, epochs):
        model.reset_metrics()
        callback_list.on_epoch_begin(epoch)
        for step in range(steps):
            callback_list.on_train_batch_begin(step)
            callback_list.on_train_batch_end(step, train_one_step(iterator))
            if model.stop_training:
                break
        logs = _metric_results(model)
        if validation is not None:
            model.reset_metrics()
            for batch in strategy.experimental_distribute_dataset(validation):
                test_one_step(batch)
            logs.update({f"val_{name}": value for name, value in _metric_results(model).items()})
        callback_list.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    # As Model.fit does: an optimizer keeping moving averages swaps them in.
    model.optimizer.finalize_variable_values(model.trainable_weights)
    callback_list.on_train_end(logs)
    return history


def _pair(data: tf.data.Dataset | tuple) -> tuple:
    return (data, None) if isinstance(data, tf.data.Dataset) else tuple(data)


def _as_batches(x, y, batch_size: int, shuffle: bool) -> tf.data.Dataset:
    if isinstance(x, tf.data.Dataset):
        dataset = x
    else:
        dataset = tf.data.Dataset.from_tensor_slices((x, y))
        if shuffle:
            # The same seed on every worker (NumPy is seeded alike by
            # set_seed), so that the workers agree on every global batch.
            seed = int(np.random.randint(2**31 - 1))
            dataset = dataset.shuffle(len(y), seed=seed, reshuffle_each_iteration=True)
        dataset = dataset.batch(batch_size)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def _count_batches(dataset: tf.data.Dataset) -> int:
    count = int(dataset.cardinality())
    if count == tf.data.INFINITE_CARDINALITY:
        raise ValueError("fit_across_workers needs a finite dataset (one epoch of batches).")
    if count == tf.data.UNKNOWN_CARDINALITY:
        count = int(dataset.reduce(0, lambda total, _: total + 1))
    return count


def _metric_results(model: keras.Model) -> dict[str, Any]:
    # Metric variables are sync-on-read: read in cross-replica context, they
    # sum over every replica of every worker.
    with model.distribute_strategy.scope():
        return dict(model.get_metrics_result())
