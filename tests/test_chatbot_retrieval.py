"""The chatbot's honest split and its reply picker: the block split, the dual encoder, the hybrid threshold,
and retrieval exports served from their index in a fresh process."""

from __future__ import annotations

import io
import json
import random
import subprocess
import sys

import numpy as np
import pytest

from apps import cli
from apps.chatbot import data
from apps.chatbot.retrieval import choose_threshold
from apps.common.errors import InputError
from apps.common.export import read_metadata
from apps.common.seq2seq.pairs import TextPairs
from apps.registry import load_app_packages

load_app_packages()


def test_the_block_split_leaves_no_conversation_on_both_sides(tmp_path):
    rng = random.Random(1)
    conversations = [[f"c{c} turn {t} {rng.choice(['yes', 'no', 'maybe'])}" for t in range(rng.randint(2, 7))]
                     for c in range(400)]
    pairs = data.conversation_pairs(conversations)
    owner = [c for c, turns in enumerate(conversations) for _ in range(len(turns) - 1)]
    first = [index for index in range(len(owner)) if index == 0 or owner[index] != owner[index - 1]]
    assert data.conversation_starts(pairs) == first
    train, blocks = data.block_split(pairs)
    assert len(blocks) == data.HELD_OUT_BLOCKS
    held = sum(len(block) for block in blocks)
    assert len(train) + held == len(pairs) and 0.07 < held / len(pairs) < 0.13

    def conversations_of(part: TextPairs) -> set[int]:
        return {int(source.split()[0][1:]) for source in part.sources}

    sides = [conversations_of(train)] + [conversations_of(block) for block in blocks]
    assert sum(len(side) for side in sides) == len(conversations)  # each conversation on one side only
    for block in blocks:  # a block is one contiguous stretch of conversations
        owners = sorted(conversations_of(block))
        assert owners == list(range(owners[0], owners[-1] + 1))

    path = tmp_path / "pairs.tsv"
    path.write_text("".join(f"{s}\t{t}\n" for s, t in zip(pairs.sources, pairs.targets)))
    train, validation, test = data.load_splits(str(path))
    assert not conversations_of(test) & (conversations_of(train) | conversations_of(validation))
    random_train, _, random_test = data.load_splits(str(path), "random")
    assert conversations_of(random_test) & conversations_of(random_train)  # what blocks avoid
    one = tmp_path / "one.tsv"
    one.write_text("a\tb\nb\tc\n")  # a single conversation
    with pytest.raises(InputError, match="needs at least 2 conversations .* --split random"):
        data.load_splits(str(one))


def test_the_threshold_best_separates_true_replies_from_others():
    assert choose_threshold(np.array([3.0, 4.0, 5.0]), np.array([0.0, 1.0, 2.0, 3.5])) == 3.0
    assert choose_threshold(np.array([5.0, 6.0]), np.array([1.0, 2.0])) == 5.0
    with pytest.raises(InputError, match="needs scores"):
        choose_threshold(np.array([]), np.array([1.0]))


def hidden_code_pairs(count: int, seed: int = 0) -> TextPairs:
    """Prompts and replies of filler words that share only a hidden code: prompt word `p<k>`
    goes with reply word `r<k>`, so no word is common to a prompt and its reply."""
    rng = random.Random(seed)
    filler = [f"w{index}" for index in range(40)]
    sources, targets = [], []
    for _ in range(count):
        code = rng.randrange(30)
        sources.append(" ".join(rng.sample(filler, 3) + [f"p{code}"] + rng.sample(filler, 2)))
        targets.append(" ".join(rng.sample(filler, 2) + [f"r{code}"] + rng.sample(filler, 2)))
    return TextPairs(sources, targets)


FRESH_PROCESS = """
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the ops of the export)
model = tf.saved_model.load(sys.argv[1])
texts = tf.constant(json.loads(sys.argv[2]))
answer = model.signatures["serving_default"](text=texts)
rank = model.signatures["rank"](text=texts, reply=tf.constant(json.loads(sys.argv[3])))
print(json.dumps({
    "replies": [r.decode() for r in answer["reply"].numpy()],
    "sources": [r.decode() for r in answer["source"].numpy()],
    "rank": rank["score"].numpy().tolist(),
    "project_imported": any(m == "apps" or m.startswith(("apps.", "gru_core")) for m in sys.modules),
}))
"""


def test_the_dual_encoder_learns_a_hidden_code_and_its_export_answers_from_its_index(
        tmp_path, monkeypatch, capsys):
    pairs = hidden_code_pairs(1200)
    path = tmp_path / "codes.tsv"
    path.write_text("".join(f"{s}\t{t}\n" for s, t in zip(pairs.sources, pairs.targets)))
    report = cli.run(["train", "chatbot", "--data", str(path), "--mode", "retrieval", "--epochs", "12",
                      "--units", "32", "--embedding-dim", "32", "--learning-rate", "3e-3",
                      "--export-dir", str(tmp_path / "exports"), "--verbose", "0"])
    assert report.metric == "hits@1 of 20"
    assert report.value >= 0.5 and report.extra["hits@1 of 20, TF-IDF"] <= 0.15, report.extra
    assert report.extra["replies retrieved / generated"].endswith(" / 0")
    metadata = read_metadata(report.export_path)
    assert metadata["mode"] == "retrieval" and metadata["retrieval"]["threshold"] is None
    train, _, test = data.load_splits(str(path))
    index = set(train.targets)
    assert metadata["retrieval"]["replies"] == len(index)

    prompts = test.sources[:4]
    given = [test.targets[0], test.targets[1], test.targets[1], test.targets[0]]
    result = subprocess.run([sys.executable, "-c", FRESH_PROCESS, report.export_path, json.dumps(prompts),
                             json.dumps(given)], capture_output=True, text=True, cwd=tmp_path, check=True)
    served = json.loads(result.stdout.strip().splitlines()[-1])
    assert not served["project_imported"]
    assert set(served["replies"]) <= index and served["sources"] == ["retrieved"] * 4
    assert served["rank"][0] > served["rank"][3] and served["rank"][1] > served["rank"][2]
    # The picked replies carry each prompt's code.
    codes = [source.split()[3][1:] for source in prompts]
    assert sum(reply.split()[2][1:] == code for reply, code in zip(served["replies"], codes)) >= 3

    capsys.readouterr()
    monkeypatch.setattr(sys, "stdin", io.StringIO(prompts[0] + "\n"))
    replies = cli.run(["chat", "--model", report.export_path])
    assert capsys.readouterr().out.splitlines() == [f"{replies[0]}\tretrieved"]
    with pytest.raises(InputError, match="answers from an index of replies, which LiteRT and ONNX"):
        cli.run(["export", "chatbot", "--model", report.export_path, "--format", "onnx"])


def test_a_hybrid_answers_by_its_threshold_and_refuses_an_empty_index(tmp_path):
    empty = tmp_path / "replies.txt"
    empty.write_text("\n  \n")
    tiny = ["train", "chatbot", "--limit", "200", "--epochs", "1", "--units", "8", "--embedding-dim", "8",
            "--decoding", "greedy", "--verbose", "0", "--export-dir", str(tmp_path / "exports")]
    with pytest.raises(InputError, match="replies.txt: no candidate replies, so the index would be empty"):
        cli.run([*tiny, "--replies", str(empty)])
    with pytest.raises(InputError, match="--replies and --mode: an index of replies needs --mode retrieval"):
        cli.run([*tiny, "--replies", str(empty), "--mode", "generative"])
    replies = tmp_path / "own.txt"
    replies.write_text("Hello there.\nI like music.\nHello there.\n")
    report = cli.run([*tiny, "--replies", str(replies)])
    metadata = read_metadata(report.export_path)
    threshold = metadata["retrieval"]["threshold"]
    assert metadata["mode"] == "hybrid" and metadata["retrieval"]["replies"] == 2
    assert report.extra["hybrid threshold (chosen on validation)"] == pytest.approx(threshold, abs=1e-4)
    assert report.metric == "held-out perplexity"

    import tensorflow as tf

    served = tf.saved_model.load(report.export_path).signatures["serving_default"](
        text=tf.constant(["hello", "do you like music", "what is the time", "tell me a joke"]))
    for reply, source, score in zip(served["reply"].numpy(), served["source"].numpy(), served["score"].numpy()):
        assert source.decode() == ("retrieved" if score >= threshold else "generated")
        if source.decode() == "retrieved":
            assert reply.decode() in ("Hello there.", "I like music.")
