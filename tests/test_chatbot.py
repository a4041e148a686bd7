"""The chatbot app: loaders, context, and train -> export -> fresh-process serving and chat."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import pytest

from apps import cli
from apps.chatbot import data
from apps.chatbot.model import distinct_n
from apps.common.errors import InputError
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
    train, held_out = data.load_splits("sample")
    assert len(train) > 1500 and len(held_out) > 150
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
    train, held_out = data.load_splits(str(tmp_path / "pairs.enc"))
    assert len(train) == 18 and len(held_out) == 2
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
    text=texts, context=tf.constant(["", "Hi"]), temperature=tf.constant(0.7),
    top_k=tf.constant(5), top_p=tf.constant(0.9))
score = model.signatures["score"](text=texts, context=tf.constant(["", ""]),
                                  reply=tf.constant(["Hi", "I am a bot."]))
print(json.dumps({
    "replies": [r.decode() for r in default["reply"].numpy()],
    "converse": [r.decode() for r in converse["reply"].numpy()],
    "nll": score["nll"].numpy().tolist(),
    "tokens": score["tokens"].numpy().tolist(),
    "project_imported": any(m == "apps" or m.startswith(("apps.", "gru_core")) for m in sys.modules),
}))
"""


def test_train_export_serve_in_fresh_process_and_chat(tmp_path, monkeypatch, capsys):
    report = cli.run([
        "train", "chatbot", "--limit", "300", "--epochs", "1", "--units", "16",
        "--embedding-dim", "16", "--max-length", "12",
        "--export-dir", str(tmp_path), "--verbose", "0",
    ])
    assert report.metric == "held-out perplexity" and report.value > 1.0
    assert report.export_path.endswith("chatbot/1")

    result = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, report.export_path],
        capture_output=True, text=True, cwd=tmp_path, check=True,
    )
    served = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(served["replies"]) == 2 and len(served["converse"]) == 2
    assert not served["project_imported"]
    # "Hi" + [END] and "i am a bot ." + [END].
    assert served["tokens"] == [2.0, 6.0] and all(nll > 0 for nll in served["nll"])

    scores = cli.run(["evaluate", "chatbot", "--model", report.export_path, "--limit", "40"])
    assert scores.details["pairs"] == 40 and scores.value > 1.0
    distinct = [float(part) for part in scores.details["distinct-1 / distinct-2"].split(" / ")]
    assert all(0.0 <= value <= 1.0 for value in distinct)

    capsys.readouterr()
    monkeypatch.setattr(sys, "stdin", io.StringIO("Hello\n\n/reset\nHow are you?\n/quit\nignored\n"))
    replies = cli.run(["chat", "--model", str(tmp_path / "chatbot"), "--top-k", "3"])
    assert len(replies) == 2
    assert capsys.readouterr().out.splitlines() == replies


def test_bad_chat_arguments(tmp_path, rejected):
    assert "--temperature: must be a number in (0, 100], got '0'" in rejected(
        ["chat", "--model", str(tmp_path), "--temperature", "0"])
