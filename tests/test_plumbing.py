"""The registry, the CLI built from it, and versioned exports."""

from __future__ import annotations

import multiprocessing
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from apps import cli
from apps.common.export import existing_versions, export_serving_model, write_versioned
from apps.common.figures import new_figure, save_figure
from apps.registry import Command, Registry


def _echo(args):
    return ("echo", args.app if hasattr(args, "app") else None, args.word)


def _configure(parser):
    parser.add_argument("word")


def test_cli_help_works_with_no_app_registered(capsys):
    parser = cli.build_parser(Registry())
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for verb in ("train", "evaluate", "predict"):
        assert verb in out
    assert "none registered yet" in out


def test_console_script_help_lists_commands():
    result = subprocess.run(
        [sys.executable, "-m", "apps.cli", "--help"], capture_output=True, text=True, check=True
    )
    assert "train" in result.stdout and "predict" in result.stdout


def test_registered_commands_dispatch_by_verb_and_app():
    registry = Registry()
    registry.register(Command("train", "alpha", "train alpha", _configure, _echo))
    registry.register(Command("train", "beta", "train beta", _configure, lambda a: "beta:" + a.word))
    registry.register(Command("hello", None, "top-level", _configure, lambda a: "top:" + a.word))
    assert cli.run(["train", "alpha", "x"], registry) == ("echo", "alpha", "x")
    assert cli.run(["train", "beta", "y"], registry) == "beta:y"
    assert cli.run(["hello", "z"], registry) == "top:z"
    assert registry.apps() == ["alpha", "beta"]
    with pytest.raises(SystemExit):
        cli.run(["train", "gamma", "x"], registry)


def test_registering_a_command_twice_is_refused():
    registry = Registry()
    registry.register(Command("train", "alpha", "h", _configure, _echo))
    with pytest.raises(ValueError, match="already registered"):
        registry.register(Command("train", "alpha", "h", _configure, _echo))
    registry.register(Command("chat", None, "h", _configure, _echo))
    with pytest.raises(ValueError, match="already"):
        registry.register(Command("chat", "alpha", "h", _configure, _echo))


def test_the_registry_holds_the_apps_too_once_each():
    registry = Registry()
    app = object()
    registry.add_app("alpha", app)
    assert registry.app_objects["alpha"] is app
    with pytest.raises(ValueError, match="App 'alpha' is already registered"):
        registry.add_app("alpha", object())


def test_every_app_with_commands_is_an_app_of_the_registry():
    from apps.common.running import registered_app
    from apps.registry import REGISTRY, load_app_packages

    load_app_packages()
    assert sorted(REGISTRY.app_objects) == REGISTRY.apps()
    assert all(registered_app(name).name == name for name in REGISTRY.apps())


def _write_file(directory: Path) -> None:
    (directory / "saved_model.pb").write_text("model")


def test_versions_count_up_and_never_overwrite(tmp_path):
    first = write_versioned("demo", _write_file, tmp_path)
    second = write_versioned("demo", _write_file, tmp_path)
    assert (first.name, second.name) == ("1", "2")
    assert existing_versions(tmp_path / "demo") == [1, 2]
    assert not [p for p in (tmp_path / "demo").iterdir() if p.name.startswith(".")]


def test_a_failed_write_leaves_no_version(tmp_path):
    def broken(directory: Path) -> None:
        (directory / "half").write_text("x")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_versioned("demo", broken, tmp_path)
    assert list((tmp_path / "demo").iterdir()) == []
    assert write_versioned("demo", _write_file, tmp_path).name == "1"


def _slow_export(root: str) -> None:
    def write(directory: Path) -> None:
        (directory / "variables").mkdir()
        (directory / "started").write_text("")
        time.sleep(60)

    write_versioned("demo", write, root)


def test_an_export_killed_midway_leaves_no_version_and_the_next_works(tmp_path):
    process = multiprocessing.get_context("spawn").Process(target=_slow_export, args=(str(tmp_path),))
    process.start()
    app_dir = tmp_path / "demo"
    deadline = time.time() + 60
    while not list(app_dir.glob(".partial-*/started")):
        assert time.time() < deadline, "the export never started"
        time.sleep(0.1)
    os.kill(process.pid, signal.SIGKILL)
    process.join()
    assert existing_versions(app_dir) == []
    assert write_versioned("demo", _write_file, tmp_path).name == "1"
    assert [p.name for p in app_dir.iterdir()] == ["1"]


def _parallel_export(root: str) -> None:
    write_versioned("demo", _write_file, root)


def test_two_exports_at_once_get_two_versions(tmp_path):
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_parallel_export, args=(str(tmp_path),)) for _ in range(4)]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
        assert process.exitcode == 0
    assert existing_versions(tmp_path / "demo") == [1, 2, 3, 4]


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_exports_and_figures_take_the_umasks_permissions(tmp_path, umask):
    # A model server running as another user reads exports (mkdtemp's 0700 was kept before).
    import keras
    import tensorflow as tf

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    serve = tf.function(lambda x: {"y": model(x)}, input_signature=[tf.TensorSpec([None, 2], tf.float32, name="x")])
    previous = os.umask(umask)
    try:
        version = export_serving_model("demo", serve, [model], tmp_path, metadata={"app": "demo"})
        figure = save_figure(new_figure(2, 2), tmp_path / "plot.png")
    finally:
        os.umask(previous)
    paths = [version, *version.rglob("*"), figure]
    assert len(paths) > 5
    for path in paths:
        expected = (0o777 if path.is_dir() else 0o666) & ~umask
        assert stat.S_IMODE(path.stat().st_mode) == expected, (path, oct(path.stat().st_mode))


def test_a_keras_file_with_a_lambda_layer_is_refused(tmp_path):
    import keras

    from apps.common.errors import InputError
    from apps.common.export import load_keras_model

    model = keras.Sequential([
        keras.Input((3,)),
        keras.layers.Lambda(lambda x: x * 2),
        keras.layers.Dense(1),
    ])
    path = tmp_path / "model.keras"
    model.save(path)
    with pytest.raises(InputError, match="Lambda"):
        load_keras_model(path)


def test_a_plain_keras_file_loads_in_safe_mode(tmp_path):
    import keras
    import numpy as np

    import gru_core
    from apps.common.export import load_keras_model

    model = keras.Sequential([keras.Input((4, 3)), gru_core.GRU(2), keras.layers.Dense(1)])
    path = tmp_path / "model.keras"
    model.save(path)
    x = np.ones((1, 4, 3), "float32")
    np.testing.assert_allclose(load_keras_model(path)(x), model(x), atol=1e-6)


def test_switches_off_by_default_are_turned_on_and_on_by_default_turned_off():
    import argparse
    import dataclasses

    from apps.common.config import Config, add_arguments, from_arguments, setting

    @dataclasses.dataclass(frozen=True)
    class Switches(Config):
        fresh: bool = setting(False, "start over")
        copy: bool = setting(True, "copy source tokens")

    parser = argparse.ArgumentParser()
    add_arguments(parser, Switches)
    assert from_arguments(Switches, parser.parse_args([])) == Switches(fresh=False, copy=True)
    assert from_arguments(Switches, parser.parse_args(["--fresh", "--no-copy"])) == Switches(True, False)
    assert from_arguments(Switches, parser.parse_args(["--copy"])).copy is True
    with pytest.raises(SystemExit):
        parser.parse_args(["--no-fresh"])
