"""The app contract: every registered app gets the same verbs, checks and export guarantees.

Nothing here names an app's flags or signatures: the tests walk the registry,
so a sixth app that registers gets all of them.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from apps import cli
from apps.common.config import ExistingPath, Number, NumberList
from apps.common.errors import InputError
from apps.common.export import METADATA_FILE
from apps.common.running import registered_app as _app
from apps.registry import REGISTRY, load_app_packages

load_app_packages()
APPS = REGISTRY.apps()
REPO = Path(__file__).resolve().parents[1]


def _commands() -> list[tuple[list[str], argparse.ArgumentParser]]:
    """(argv prefix, parser) of every registered command."""
    parser = cli.build_parser()
    found = []
    for verb_action in parser._subparsers._group_actions:  # argparse keeps its sub-parsers here
        for verb, verb_parser in verb_action.choices.items():
            if verb in REGISTRY.top_commands:
                found.append(([verb], verb_parser))
                continue
            for app_action in verb_parser._subparsers._group_actions:
                for app, app_parser in app_action.choices.items():
                    found.append(([verb, app], app_parser))
    return found


def _numeric_flags(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if action.option_strings and isinstance(action.type, (Number, NumberList)):
            yield action.option_strings[0], action.type


def _bad_values(check: Number | NumberList) -> list[str]:
    number = check.item if isinstance(check, NumberList) else check
    bad = ["nan", "inf", "-inf", "x"]
    if number.minimum is not None:
        bad.append(f"{number.minimum - 1:g}")
        if number.above_minimum:
            bad.append(f"{number.minimum:g}")
    if number.maximum is not None:
        bad.append(f"{number.maximum + 1:g}")
        if number.below_maximum:
            bad.append(f"{number.maximum:g}")
    if number.kind is int:
        bad.append("1.5")
    return bad


def _exits_with_one_line(parser, argv, capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


def test_every_app_offers_train_evaluate_and_predict():
    assert len(APPS) >= 5
    for app in APPS:
        for verb in ("train", "evaluate", "predict"):
            assert app in REGISTRY.app_commands[verb], f"{verb} {app} is missing"


def test_every_numeric_flag_is_checked_and_bad_values_exit_2_naming_flag_and_value(capsys):
    checked = 0
    for prefix, parser in _commands():
        for action in parser._actions:
            # A bare int/float type would let NaN, zero or negatives through unchecked.
            assert action.type not in (int, float), f"{' '.join(prefix)} {action.option_strings}"
        for flag, check in _numeric_flags(parser):
            for value in _bad_values(check):
                err = _exits_with_one_line(parser, [f"{flag}={value}"], capsys)
                assert flag in err and repr(value) in err and "must be" in err, err
                checked += 1
    assert checked > 100


def test_the_lowest_allowed_value_of_every_numeric_flag_is_accepted():
    for prefix, parser in _commands():
        for flag, check in _numeric_flags(parser):
            number = check.item if isinstance(check, NumberList) else check
            low = number.minimum if number.minimum is not None else 0
            value = low + 1 if number.above_minimum or number.minimum is None else low
            if number.maximum is not None:
                value = min(value, number.maximum - (1e-3 if number.below_maximum else 0))
            text = f"{int(value)}" if number.kind is int else f"{value:g}"
            # The flag's argparse type, exactly what parsing the flag runs.
            assert check(text) is not None, f"{' '.join(prefix)} {flag} {text}"


def test_missing_paths_exit_2_naming_the_flag(tmp_path, capsys):
    missing = str(tmp_path / "missing")
    for prefix, parser in _commands():
        for action in parser._actions:
            if action.option_strings and isinstance(action.type, ExistingPath):
                err = _exits_with_one_line(parser, [f"{action.option_strings[0]}={missing}"], capsys)
                assert action.option_strings[0] in err and "missing" in err


def test_a_bad_flag_from_the_real_command_prints_one_line_and_no_startup_noise(tmp_path):
    for argv, expected in [
        (["train", "sentiment", "--epochs", "0"], "--epochs"),
        (["predict", "sentiment", "--model", str(tmp_path), "x"], "no numbered versions"),
    ]:
        result = subprocess.run([sys.executable, "-m", "apps.cli", *argv], capture_output=True,
                                text=True, cwd=tmp_path)
        assert result.returncode == 2
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], result.stderr
        assert "cuInit" not in result.stderr and "oneDNN" not in result.stderr


def test_configs_check_values_when_library_code_builds_them():
    from apps.common.config import ConfigError

    for app in APPS:
        config_class = _app(app).Train
        with pytest.raises(ConfigError, match="epochs"):
            config_class(epochs=0)
        with pytest.raises(ConfigError, match="batch_size"):
            config_class(batch_size=math.nan)
        assert config_class().epochs >= 1


def test_a_train_config_survives_the_trip_to_another_process_as_arguments():
    from apps.common.config import to_arguments
    from apps.common.running import settings_from

    for app in APPS:
        config_class = _app(app).Train
        words = [*_app(app).smoke_args, *_app(app).quick_args, "--backend", "jax", "--minutes", "1.5",
                 "--no-log", "--run-dir", "runs/x y"]
        config = settings_from(config_class, words)
        assert settings_from(config_class, to_arguments(config)) == config, app
        assert to_arguments(config_class()) == []


def test_an_app_that_fits_on_tensorflow_only_refuses_another_backend_in_one_line(capsys):
    refused = [app for app in APPS if _app(app).tensorflow_only]
    assert refused, "every app fits on every backend: drop this test's first half"
    for app in refused:
        assert cli.main(["train", app, "--backend", "jax"]) == 2
        lines = capsys.readouterr().err.strip().splitlines()
        assert len(lines) == 1 and "--backend jax" in lines[0] and "TensorFlow only" in lines[0]
    assert cli.main(["train", "sentiment", "--backend", "jax", "--strategy", "mirrored"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "--backend and --strategy" in lines[0]


def test_keras_private_api_is_where_this_project_expects_it():
    from gru_core import keras_private

    problems = keras_private.check()
    assert not problems, "Keras moved private API this project uses: " + "; ".join(problems)


def test_save_figure_never_leaves_half_a_png(tmp_path):
    from apps.common.figures import new_figure, save_figure

    target = tmp_path / "plot.png"
    target.write_bytes(b"old")
    figure = new_figure(2, 2)
    figure.subplots().plot([0, 1], [1, 0])

    def failing_savefig(path, **kwargs):
        Path(path).write_bytes(b"half")
        raise OSError("disk full")

    figure.savefig = failing_savefig
    with pytest.raises(OSError):
        save_figure(figure, target)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["plot.png"]
    fresh = new_figure(2, 2)
    fresh.subplots().plot([0, 1], [1, 0])
    assert save_figure(fresh, target).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# A fresh interpreter that never imports this project: it loads the export with
# plain tf.saved_model.load, sends an empty batch through every signature, and
# blank text through serving_default.
FRESH_PROCESS = textwrap.dedent("""
    import json, sys
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (the ops the text exports use)

    loaded = tf.saved_model.load(sys.argv[1])
    result = {}
    for name, function in loaded.signatures.items():
        inputs = {}
        for key, spec in function.structured_input_signature[1].items():
            if spec.shape.rank == 0:
                # A string scalar is a choice, where "" is the export's own.
                inputs[key] = tf.constant("") if spec.dtype == tf.string else tf.ones([], spec.dtype)
                continue
            shape = [0] + [0 if size is None else size for size in spec.shape[1:]]
            inputs[key] = tf.zeros(shape, spec.dtype) if spec.dtype != tf.string else tf.fill(shape, "")
        outputs = function(**inputs)
        result[name] = {key: value.shape.as_list() for key, value in outputs.items()}
    blank = loaded.signatures["serving_default"](text=tf.constant([""])) if "text" in (
        loaded.signatures["serving_default"].structured_input_signature[1]) else {}
    result["blank"] = {k: v.numpy().tolist() for k, v in blank.items() if v.dtype == tf.string}
    result["project imported"] = any(m.split(".")[0] in ("apps", "gru_core") for m in sys.modules)
    print(json.dumps(result, default=lambda b: b.decode("utf-8")))
""")


@pytest.mark.parametrize("name", APPS)
def test_the_contract(name, smoke_exports, tmp_path, monkeypatch, capsys):
    app = _app(name)
    monkeypatch.chdir(tmp_path)
    export = smoke_exports[name].path  # `train APP` with the app's smoke_args, once per test run
    exports = export.parent.parent
    assert export == exports / name / "1" and math.isfinite(smoke_exports[name].value)
    assert json.loads((export / METADATA_FILE).read_text())["app"] == name

    fresh = subprocess.run([sys.executable, "-c", FRESH_PROCESS, str(export)], capture_output=True,
                           text=True, cwd=tmp_path)
    assert fresh.returncode == 0, fresh.stderr[-3000:]
    # Every signature runs gru_core's inference recurrence: no custom gradient to warn of.
    assert "unsaved custom gradients" not in fresh.stderr, fresh.stderr[-3000:]
    served = json.loads(fresh.stdout.strip().splitlines()[-1])
    assert not served.pop("project imported")
    blank = served.pop("blank")
    for signature, outputs in served.items():
        for output, shape in outputs.items():
            assert shape[0] == 0, f"{signature}/{output} answered an empty batch with {shape}"
    if app.generates_text:
        assert blank and all(value == [""] for value in blank.values()), blank

    evaluation = cli.run(["evaluate", name, "--model", str(exports / name)])
    assert evaluation.value == pytest.approx(smoke_exports[name].value, rel=1e-4, abs=1e-4)
    assert len(cli.run(["predict", name, "--model", str(export), *app.example_inputs])) > 0
    if "explain" in REGISTRY.app_commands and name in REGISTRY.app_commands["explain"]:
        cli.run(["explain", name, "--model", str(export), app.example_inputs[0],
                 "--output", str(tmp_path / "explain.png")])
        assert (tmp_path / "explain.png").read_bytes()[:4] == b"\x89PNG"

    other = APPS[(APPS.index(name) + 1) % len(APPS)]
    with pytest.raises(InputError, match=f"this is a {name} export, not a {other} one"):
        cli.run(["predict", other, "--model", str(export), *_app(other).example_inputs])
