"""The chatbot app: loaders, context, and train -> export -> fresh-process serving and chat."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from apps import cli
from apps.chatbot import data
from apps.chatbot.app import CHATBOT
from apps.chatbot.quality import (
    DECODING_CANDIDATES,
    DecodingResult,
    answer_share,
    choose_decoding,
    distinct_n,
)
from apps.common.errors import InputError
from apps.common.export import read_metadata
from apps.common.running import load_export
from apps.common.seq2seq.settings import DecodingOptions
from apps.registry import load_app_packages

load_app_packages()
SEP = data.CONTEXT_SEPARATOR


def test_chatterbot_yaml_gives_pairs_with_context(tmp_path):
    path = tmp_path / "greetings.yml"
    path.write_text(
        "categories:\n- greetings\nconversations:\n"
        "- - Hello\n  - Hi\n  - How are you?\n"
        "- - Is 42 the answer?\n  - Yes\n"
        "- A lone string is no conversation\n"
    )
    conversations = data.read_chatterbot_yaml(path)
    assert conversations == [["Hello", "Hi", "How are you?"], ["Is 42 the answer?", "True"]]
    pairs = data.conversation_pairs(conversations)
    assert pairs.sources == ["Hello", f"Hi {SEP} Hello", "Is 42 the answer?"]
    assert pairs.targets == ["Hi", "How are you?", "True"]
    path.write_text("categories: [x]\n")
    with pytest.raises(InputError, match="greetings.yml: expected a mapping with a 'conversations'"):
        data.read_chatterbot_yaml(path)


def test_sample_is_the_installed_english_corpus():
    train, validation, test = data.load_splits("sample")
    assert len(train) > 1500 and len(validation) > 75 and len(test) > 75
    assert len(train) + len(validation) + len(test) == len(data.all_pairs("sample"))
    assert validation.sources != test.sources
    assert any(SEP in source for source in train.sources)


def test_cornell_files_in_their_original_format(tmp_path):
    separator = data.FIELD_SEPARATOR
    lines = [
        ["L1045", "u0", "m0", "BIANCA", "They do not!"],
        ["L1044", "u2", "m0", "CAMERON", "They do to!"],
        ["L985", "u0", "m0", "BIANCA", "I hope so. Café?"],
        ["L984", "u2", "m0", "CAMERON", "She okay?"],
        ["L986", "u2", "m0", "CAMERON", ""],
    ]
    (tmp_path / "movie_lines.txt").write_bytes(
        "\n".join(separator.join(fields) for fields in lines).encode("iso-8859-1")
    )
    (tmp_path / "movie_conversations.txt").write_text(
        f"u0{separator}u2{separator}m0{separator}['L1044', 'L1045']\n"
        f"u0{separator}u2{separator}m0{separator}['L984', 'L985', 'L986']\n",
        encoding="iso-8859-1",
    )
    pairs = data.read_cornell(tmp_path)
    assert pairs.sources == ["They do to!", "She okay?"]
    assert pairs.targets == ["They do not!", "I hope so. Café?"]
    (tmp_path / "movie_conversations.txt").write_text(
        f"u0{separator}u2{separator}m0{separator}['L1044', 'L9']\n"
    )
    with pytest.raises(InputError, match=r"movie_conversations.txt, line 1: line id 'L9'"):
        data.read_cornell(tmp_path)


def test_enc_dec_files(tmp_path):
    (tmp_path / "pairs.enc").write_text("\n".join(f"hi {i}" for i in range(20)) + "\n")
    (tmp_path / "pairs.dec").write_text("\n".join(f"hello {i}" for i in range(20)) + "\n")
    train, validation, test = data.load_splits(str(tmp_path / "pairs.enc"))
    assert (len(train), len(validation), len(test)) == (18, 1, 1)
    assert validation.sources != test.sources
    assert len(data.evaluation_pairs(str(tmp_path / "pairs.enc"))) == 20
    # An empty turn (Cornell's .enc/.dec have a few) drops its pair.
    (tmp_path / "pairs.enc").write_text("hi\n\nbye\n")
    (tmp_path / "pairs.dec").write_text("hello\nwhat?\nsee you\n")
    assert data.evaluation_pairs(str(tmp_path / "pairs.enc")).sources == ["hi", "bye"]
    (tmp_path / "pairs.enc").write_text("\n".join(f"hi {i}" for i in range(20)) + "\n")
    (tmp_path / "pairs.dec").write_text("hello\n")
    with pytest.raises(InputError, match="pairs.enc has 20 lines but .*pairs.dec has 1"):
        data.load_splits(str(tmp_path / "pairs.enc"))


def test_distinct_n():
    assert distinct_n(["a b a b", "a b"], 1) == pytest.approx(2 / 6)
    assert distinct_n(["a b a b", "a b"], 2) == pytest.approx(2 / 4)
    assert distinct_n(["", "x"], 2) == 0.0


FRESH_PROCESS = """
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the ops of the export)
model = tf.saved_model.load(sys.argv[1])
texts = tf.constant(["Hello", "What is your name?"])
default = model.signatures["serving_default"](text=texts)
converse = model.signatures["converse"](
    text=texts, context=tf.constant(["", "Hi"]), decoding=tf.constant("sample"),
    temperature=tf.constant(0.7), top_k=tf.constant(5), top_p=tf.constant(0.9))
as_exported = {name: model.signatures["converse"](
    text=texts, context=tf.constant(["", ""]), decoding=tf.constant(name),
    temperature=tf.constant(1.0), top_k=tf.constant(0), top_p=tf.constant(1.0))["reply"]
    for name in ("", "greedy")}
score = model.signatures["score"](text=texts, context=tf.constant(["", ""]),
                                  reply=tf.constant(["Hi", "I am a bot."]))
print(json.dumps({
    "replies": [r.decode() for r in default["reply"].numpy()],
    "converse": [r.decode() for r in converse["reply"].numpy()],
    "export's decoding": [r.decode() for r in as_exported[""].numpy()],
    "greedy": [r.decode() for r in as_exported["greedy"].numpy()],
    "nll": score["nll"].numpy().tolist(),
    "tokens": score["tokens"].numpy().tolist(),
    "project_imported": any(m == "apps" or m.startswith(("apps.", "gru_core")) for m in sys.modules),
}))
"""


def test_train_export_serve_in_fresh_process_and_chat(tmp_path, monkeypatch, capsys):
    report = cli.run([
        "train", "chatbot", "--limit", "300", "--epochs", "1", "--units", "16", "--mode", "generative",
        "--embedding-dim", "16", "--max-length", "12", "--decoding", "greedy", "--no-repeat-ngram", "2",
        "--export-dir", str(tmp_path), "--verbose", "0",
    ])
    assert report.metric == "held-out perplexity" and report.value > 1.0
    assert report.export_path.endswith("chatbot/1")
    assert report.extra["decoding"] == "greedy, no repeated 2-grams"
    assert read_metadata(report.export_path)["decoding"]["no_repeat_ngram"] == 2

    result = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, report.export_path],
        capture_output=True, text=True, cwd=tmp_path, check=True,
    )
    served = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(served["replies"]) == 2 and len(served["converse"]) == 2
    assert not served["project_imported"]
    # converse with decoding "" decodes as serving_default does (greedy here, so the same).
    assert served["export's decoding"] == served["greedy"] == served["replies"]
    # "Hi" + [END] and "i am a bot ." + [END].
    assert served["tokens"] == [2.0, 6.0] and all(nll > 0 for nll in served["nll"])

    scores = cli.run(["evaluate", "chatbot", "--model", report.export_path, "--limit", "40"])
    assert scores.details["pairs"] == 40 and scores.value > 1.0
    assert 0.0 <= scores.details["hits@1 of 20, TF-IDF"] <= 1.0
    per_token, relative = map(float, scores.details["hits@1 by per-token / relative likelihood"].split(" / "))
    assert 0.0 <= per_token <= 1.0 and scores.details["hits@1 of 20"] == pytest.approx(relative, abs=1e-3)
    distinct = [float(part) for part in scores.details["distinct-1 / distinct-2"].split(" / ")]
    assert all(0.0 <= value <= 1.0 for value in distinct)
    few = cli.run(["evaluate", "chatbot", "--model", report.export_path, "--limit", "10"])
    assert few.details["hits@1 of 20"].startswith("not measured: hits@1 of 20 needs at least 20")

    capsys.readouterr()
    monkeypatch.setattr(sys, "stdin", io.StringIO("Hello\n\n/reset\nHow are you?\n/quit\nignored\n"))
    replies = cli.run(["chat", "--model", str(tmp_path / "chatbot"), "--decoding", "sample", "--top-k", "3"])
    assert len(replies) == 2
    assert capsys.readouterr().out.splitlines() == [f"{reply}\tgenerated" for reply in replies]
    monkeypatch.setattr(sys, "stdin", io.StringIO("Hello\nWhat is your name?\n"))
    greedy = cli.run(["chat", "--model", str(tmp_path / "chatbot"), "--no-context"])
    assert greedy == served["replies"]


def test_auto_decoding_exports_the_choice_the_rule_makes(tmp_path):
    report = cli.run([
        "train", "chatbot", "--limit", "200", "--epochs", "1", "--units", "8", "--mode", "generative",
        "--embedding-dim", "8", "--max-length", "10", "--export-dir", str(tmp_path), "--verbose", "0",
    ])
    metadata = read_metadata(report.export_path)
    table = metadata["decoding choice"]
    assert [row["decoding"] for row in table] == [options.label for options in DECODING_CANDIDATES]
    results = [
        DecodingResult(options, row["f1"], row["distinct_1"], row["distinct_2"], row["mean_tokens"])
        for options, row in zip(DECODING_CANDIDATES, table)
    ]
    chosen = choose_decoding(results).options
    assert DecodingOptions(**metadata["decoding"]) == chosen
    assert report.extra["decoding"] == f"{chosen.label} (chosen on the validation split)"

    # The quick-mode figure that `reproduce` prints and the docs quote, on a tiny model.
    export = load_export(CHATBOT, Path(report.export_path))
    share, prompts = answer_share(export.signature(), data.all_pairs("sample"))
    assert prompts == 100 and 0.0 <= share <= 1.0
    assert CHATBOT.demo(export).startswith(
        f"answers {share:.0%} of 100 sample prompts with one of the corpus's replies to them; 'hello' -> ")


def test_bad_chat_arguments(tmp_path, rejected):
    assert "--temperature: must be a number in (0, 100], got '0'" in rejected(
        ["chat", "--model", str(tmp_path), "--temperature", "0"])
    assert "--decoding" in rejected(["chat", "--model", str(tmp_path), "--decoding", "fast"])


def test_the_copy_switch_takes_no_value(rejected):
    assert "--copy" in rejected(["train", "chatbot", "--copy=yes"])
