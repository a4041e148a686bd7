"""The translation app: grammar, loaders, and train -> export -> fresh-process serving."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import pytest

from apps import cli
from apps.common.errors import InputError
from apps.registry import load_app_packages
from apps.translation import data
from apps.translation.grammar import conjugate, generate_pairs, inflect_adjective

load_app_packages()


def test_grammar_agrees_in_gender_and_number():
    assert inflect_adjective("rojo", "f", "pl") == "rojas"
    assert inflect_adjective("verde", "f", "sg") == "verde"
    assert inflect_adjective("azul", "m", "pl") == "azules"
    assert conjugate("comer", 3) == "comemos" and conjugate("vivir", 3) == "vivimos"
    assert conjugate("tener", 0) == "tengo"
    pairs = generate_pairs(3000, seed=0)
    assert pairs == generate_pairs(3000, seed=0) and len(dict(pairs)) == 3000
    spanish = dict(pairs)
    for english, translation in pairs:
        if english.startswith("The red houses "):
            assert translation.startswith("Las casas rojas ")
        if english.startswith("We ") and " not " not in english:
            assert translation.startswith("Nosotros ")
    words = {w for e, s in pairs for w in f"{e} {s}".lower().replace(".", "").split()}
    assert 300 < len(words) < 1500 and len(spanish) == 3000


def test_anki_file_with_attribution_column(tmp_path):
    path = tmp_path / "spa.txt"
    path.write_text(
        "Go.\tVe.\tCC-BY 2.0 (France) Attribution: tatoeba.org #2877272 (CM) & #4986655 (cueyayotl)\n"
        "Hi.\tHola.\tCC-BY 2.0 (France) Attribution: tatoeba.org #538123 (CM) & #431975 (Leono)\n"
    )
    pairs = data.read_anki_file(path)
    assert pairs.sources == ["Go.", "Hi."] and pairs.targets == ["Ve.", "Hola."]
    with pytest.raises(InputError, match="anki:sp4: expected a language code"):
        data.download_anki("sp4")


def test_multi30k_gzipped_raw_files(tmp_path):
    for name, lines in {
        "val.de": "Ein Hund rennt.\nZwei Männer lachen.\n",
        "val.en": "A dog runs.\nTwo men laugh.\n",
    }.items():
        (tmp_path / f"{name}.gz").write_bytes(gzip.compress(lines.encode()))
    pairs = data.read_multi30k(tmp_path, "val")
    assert pairs.sources[1] == "Zwei Männer lachen." and pairs.targets[0] == "A dog runs."


def test_local_data_and_reverse(tmp_path):
    source, target = tmp_path / "a.txt", tmp_path / "b.txt"
    source.write_text("\n".join(f"s{i}" for i in range(20)) + "\n")
    target.write_text("\n".join(f"t{i}" for i in range(20)) + "\n")
    train, validation = data.load_splits(f"{source},{target}", reverse=True)
    assert len(train) == 18 and len(validation) == 2
    assert all(s.startswith("t") for s in train.sources)
    with pytest.raises(InputError, match="no such file"):
        data.load_splits(str(tmp_path / "missing.tsv"))
    train, validation = data.sample_pairs()
    assert len(validation) == data.SAMPLE_VALIDATION and not set(train.sources) & set(validation.sources)


FRESH_PROCESS = """
import json, sys
import tensorflow as tf
import tensorflow_text  # noqa: F401  (registers the ops of the export)
model = tf.saved_model.load(sys.argv[1])
out = model.signatures["serving_default"](text=tf.constant(["The red houses are big.", ""]))
att = model.signatures["attention"](text=tf.constant(["The dog eats."]))
print(json.dumps({
    "translations": [t.decode() for t in out["translation"].numpy()],
    "dtype": out["translation"].dtype.name,
    "weights": list(att["weights"].shape),
    "source_tokens": [t.decode() for t in att["source_tokens"].numpy()[0]],
    "project_imported": any(m == "apps" or m.startswith(("apps.", "gru_core")) for m in sys.modules),
}))
"""


def test_train_export_serve_in_fresh_process_explain_and_evaluate(tmp_path):
    report = cli.run([
        "train", "translation", "--limit", "300", "--epochs", "1", "--units", "16",
        "--embedding-dim", "16", "--max-length", "16", "--beam-width", "2",
        "--export-dir", str(tmp_path), "--verbose", "0",
    ])
    assert report.metric == "held-out BLEU" and 0.0 <= report.value <= 100.0
    assert report.export_path.endswith("translation/1")

    result = subprocess.run(
        [sys.executable, "-c", FRESH_PROCESS, report.export_path],
        capture_output=True, text=True, cwd=tmp_path, check=True,
    )
    served = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(served["translations"]) == 2 and served["dtype"] == "string"
    assert not served["project_imported"]
    assert served["source_tokens"][:5] == ["[START]", "the", "dog", "eats", "."]
    assert served["weights"][0] == 1 and served["weights"][2] == len(served["source_tokens"])

    translations = cli.run(["translate", "--model", str(tmp_path / "translation"), "A cat.", "Hi"])
    assert len(translations) == 2 and all(isinstance(t, str) for t in translations)
    png = cli.run(["explain", "translation", "--model", report.export_path, "The dog eats.",
                   "--output", str(tmp_path / "alignment.png")])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    pairs = tmp_path / "test.tsv"
    pairs.write_text("The dog eats.\tEl perro come.\nWe walk.\tNosotros caminamos.\n")
    scores = cli.run(["evaluate", "translation", "--model", report.export_path,
                      "--data", str(pairs)])
    assert scores.details["pairs"] == 2 and 0.0 <= scores.value <= 100.0
    assert 0.0 <= scores.details["held-out chrF"] <= 100.0


def test_bad_arguments_are_input_errors(tmp_path, rejected):
    assert "--max-length: must be an integer in [3, 10000], got '2'" in rejected(
        ["train", "translation", "--max-length", "2", "--no-export"])
    with pytest.raises(InputError, match="not a SavedModel folder"):
        cli.run(["translate", "--model", str(tmp_path), "hello"])
