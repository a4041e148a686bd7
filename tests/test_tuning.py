"""`gru-suite tune APP`: the search space from the settings, a two-trial search, its table and command."""

from __future__ import annotations

import dataclasses
import shlex

import pytest
import tensorflow as tf

from apps import cli
from apps.common.config import from_arguments, search_fields
from apps.common.errors import InputError
from apps.registry import load_app_packages
from apps.sentiment.settings import SentimentTrain
from apps.stock.settings import StockTrain
from apps.suite.tuning import search_space

SMALL = "--epochs 1 --limit 200 --units 8 --embedding-dim 8 --verbose 0"


def test_the_search_space_is_the_settings_declared_ranges_starting_from_the_given_values():
    space = search_space(SentimentTrain(units=8, dropout=0.2))
    declared = [field.name for field, _ in search_fields(SentimentTrain)]
    assert [hp.name for hp in space.space] == declared
    assert {"units", "learning_rate", "dropout", "embedding_dim"} <= set(declared)
    ranges = {field.name: search for field, search in search_fields(SentimentTrain)}
    assert space.values["units"] == ranges["units"].low  # 8 lies below the range: its low end
    assert space.values["dropout"] == 0.2 and space.values["learning_rate"] == SentimentTrain.learning_rate
    assert "dropout" in [field.name for field, _ in search_fields(StockTrain)]


def test_a_two_trial_search_ends_with_its_table_and_the_command_of_the_best_trial(tmp_path, capsys):
    load_app_packages()
    results = cli.run(["tune", "sentiment", "--max-trials", "2", "--directory", str(tmp_path),
                       "--train-args", SMALL])
    out = capsys.readouterr().out
    assert len(results) == 2
    first, best = results[0], min(results, key=lambda result: result.val_loss)
    assert first.values["embedding_dim"] == 16 and first.values["dropout"] == SentimentTrain.dropout
    assert "| trial | units | embedding_dim | dropout | learning_rate | best val_loss |" in out
    command = out.split("reproduce the best trial with:\n")[1].splitlines()[0].strip()
    words = shlex.split(command)
    assert words[:3] == ["gru-suite", "train", "sentiment"]
    assert words.count("--units") == 1 and words.count("--epochs") == 1  # the trial's units replace SMALL's
    config = from_arguments(SentimentTrain, cli.build_parser().parse_args(words[1:]))
    assert {name: getattr(config, name) for name in best.values} == best.values
    assert dataclasses.replace(config, **first.values).epochs == 1

    # The HParams dashboard's configuration, and each trial's settings and objective.
    logs = tmp_path / "sentiment" / "logs"
    tags = set()
    for events in logs.rglob("events.out.tfevents.*"):
        for event in tf.compat.v1.train.summary_iterator(str(events)):
            tags |= {value.tag for value in event.summary.value}
    assert {"_hparams_/experiment", "_hparams_/session_start_info", "val_loss"} <= tags
    assert sorted(path.name for path in logs.iterdir() if path.is_dir()) == ["trial_0", "trial_1"]


def test_bad_tune_arguments_are_refused_in_one_line(rejected, capsys):
    load_app_packages()
    assert "--max-trials" in rejected(["tune", "sentiment", "--max-trials", "0"])
    assert "--units" in rejected(["tune", "sentiment", "--train-args", "--units -3"])
    for argv, expected in ((["tune", "poetry"], "unknown app 'poetry'"),
                           (["tune", "sentiment", "--train-args", "'unclosed"], "--train-args")):
        with pytest.raises(InputError, match=expected) as error:  # `gru-suite` prints it as one line
            cli.run(argv)
        assert "\n" not in str(error.value)
