"""`gru-suite export APP --format litert|onnx`: an export as files beside its SavedModel that
answer what the SavedModel answers, and `--model FILE` everywhere an export is read."""

from __future__ import annotations

import json
import random
import re
import shutil
import stat
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from apps import cli
from apps.common.errors import InputError
from apps.common.export import load_exported
from apps.common.files import current_umask
from apps.common.formats import description_path, format_file, load_file_export
from apps.common.running import registered_app
from apps.common.seq2seq.serving import exported_server
from apps.common.settings import FORMAT_FILES
from apps.common.text import reference_tokens, tokenize
from apps.registry import load_app_packages

pytest.importorskip("ai_edge_litert", reason="the litert extra is not installed")
pytest.importorskip("onnxruntime", reason="the onnx extra is not installed")
onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed")

# A client's script that imports neither this project nor TensorFlow: the file's path, JSON inputs
# on stdin -> its numeric outputs as JSON.
CLIENT = """
import json, sys
import numpy as np
path = sys.argv[1]
inputs = {name: np.asarray(value, np.float32) for name, value in json.loads(sys.stdin.read()).items()}
if path.endswith(".tflite"):
    from ai_edge_litert.interpreter import Interpreter
    outputs = Interpreter(model_path=path).get_signature_runner("serving_default")(**inputs)
else:
    import onnxruntime
    session = onnxruntime.InferenceSession(path)
    outputs = dict(zip([o.name for o in session.get_outputs()], session.run(None, inputs)))
print(json.dumps({name: value.tolist() for name, value in outputs.items() if value.dtype.kind in "fiu"}))
"""
# Greedy decoding over a seq2seq app's two files, importing neither this project nor TensorFlow:
# the main file's path, JSON source ids on stdin -> the generated target ids.
GREEDY_CLIENT = """
import json, sys
import numpy as np
path = sys.argv[1]
signatures = json.load(open(path + ".json"))["signatures"]
folder = path.rsplit("/", 1)[0]
if path.endswith(".tflite"):
    from ai_edge_litert.interpreter import Interpreter
    def runner(file):
        return Interpreter(model_path=folder + "/" + file).get_signature_runner("serving_default")
else:
    import onnxruntime
    def runner(file):
        session = onnxruntime.InferenceSession(folder + "/" + file)
        names = [o.name for o in session.get_outputs()]
        return lambda **feeds: dict(zip(names, session.run(None, feeds)))
encode, step = runner(signatures["encode"]["file"]), runner(signatures["decode_step"]["file"])
PAD, START, END = 0, 2, 3
source_ids = np.asarray(json.loads(sys.stdin.read()), np.int64)
encoded = encode(source_ids=source_ids)
states = {name: value for name, value in encoded.items() if name.startswith("state_")}
tokens = np.full(len(source_ids), START, np.int64)
finished = np.zeros(len(source_ids), bool)
generated = []
for _ in range(int(sys.argv[2])):
    out = step(token_ids=tokens, encoder_outputs=encoded["encoder_outputs"], source_ids=source_ids, **states)
    logits = out["logits"]
    logits[:, [PAD, START]] = -1e9  # never targets in training
    tokens = np.where(finished, END, logits.argmax(-1)).astype(np.int64)
    finished |= tokens == END
    generated.append(tokens.tolist())
    states = {name: out["next_" + name] for name in states}
    if finished.all():
        break
print(json.dumps(np.asarray(generated).T.tolist()))
"""
# The apps whose exports convert, and the outputs they answer (the transcriber's after the client decodes).
CONVERTING = {"stock": ["forecast", "quantiles", "uncalibrated"], "speech": ["label", "probabilities"],
              "transcriber": ["frames", "transcript"], "sentiment": ["label", "probability"],
              "translation": ["translation"], "chatbot": ["reply"]}
# The apps whose file is an encoder and a decoder step, with the decoding loop in the client.
SEQ2SEQ = ("translation", "chatbot")
# Text the in-graph tokenizer and the Python one must split alike.
HOSTILE_TEXTS = [
    "Not bad at all.", "It's GREAT!!!", "Straße ﬁne Ǆ café naïve", "ΣΊΣΥΦΟΣ ς", "a\u00a0b\u2003c\u3000d\x0be\x85f",
    "１２３ ＡＢＣ", "emoji 😀👍🏽 ok", "«quote» — dash…", "tab\tnew\nline\r\n", "", "   ", "'apostrophe's'",
    "İstanbul ǰ ŉ", "x\u200by\u00adz", "n\u0303 combining", "½ ⅓ ²", "$100 #tag @user http://x.y/z?q=1",
    "日本語のテキスト。", "ا ب ت ٣", "\ufffd",
]


def _converted(smoke_exports, folder, app: str):
    """A copy of an app's smoke export with both formats written beside it by the CLI."""
    load_app_packages()
    version = folder / app / "1"
    shutil.copytree(smoke_exports[app].path, version)
    for file_format in FORMAT_FILES:
        cli.run(["export", app, "--model", str(version), "--format", file_format])
    return version


@pytest.fixture(scope="module")
def versions(smoke_exports, tmp_path_factory):
    folder = tmp_path_factory.mktemp("formats")
    return {app: _converted(smoke_exports, folder, app) for app in CONVERTING}


def _requests(app: str, saved) -> list[dict[str, np.ndarray]]:
    """Raw inputs the app's signature takes: texts; price windows; clips shorter and longer than a second."""
    rng = np.random.default_rng(3)
    if app in ("sentiment", *SEQ2SEQ):
        examples = list(registered_app(app).example_inputs) + ["not bad at all", "a dull, lifeless film"]
        return [{"text": np.asarray(HOSTILE_TEXTS + examples, object)}]
    if app == "stock":
        window = saved.structured_input_signature[1]["prices"].shape[1]
        return [{"prices": (100 * np.exp(np.cumsum(rng.normal(0, 0.02, size=(4, window)), axis=1))).astype(np.float32)}]
    clips = [rng.normal(0, 0.1, size=(2, samples)).astype(np.float32) for samples in (9000, 20000)]
    clips[0][1, 6000:] = 0.0  # a shorter utterance, zero-padded
    return [{"waveform": clip} for clip in clips]


@pytest.mark.parametrize("file_format", sorted(FORMAT_FILES))
@pytest.mark.parametrize("app", sorted(CONVERTING))
def test_each_format_answers_what_the_savedmodel_answers(versions, app, file_format):
    version = versions[app]
    path = version / FORMAT_FILES[file_format]
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~current_umask()
    description = json.loads(description_path(path).read_text())
    assert description["format"] == file_format and description["metadata"]["app"] == app
    if file_format == "onnx":  # every recurrent layer as ONNX's native GRU op, none as a Loop
        operators = [node.op_type for node in onnx.load(str(path)).graph.node]
        assert "GRU" in operators and "Loop" not in operators
    saved = load_exported(version).signatures["serving_default"]
    served = registered_app(app).from_file(load_file_export(path)).signature()
    for request in _requests(app, saved):
        expected = {name: value.numpy() for name, value in saved(**{k: tf.constant(v) for k, v in request.items()}).items()}
        got = served(**request)
        assert sorted(got) == sorted(expected) == CONVERTING[app]
        for name, value in expected.items():
            if value.dtype.kind == "f":
                np.testing.assert_allclose(got[name].numpy(), value, rtol=1e-5, atol=1e-6)
            else:
                np.testing.assert_array_equal(got[name].numpy(), value)
        if [item["name"] for item in description["signatures"].get("serving_default", {}).get("inputs", [])] != list(request):
            continue  # the file takes what its client makes of the request (ids), checked above
        client = subprocess.run([sys.executable, "-c", CLIENT, str(path)], capture_output=True, text=True,
                                input=json.dumps({k: v.tolist() for k, v in request.items()}), check=True)
        answered = json.loads(client.stdout.strip().splitlines()[-1])
        assert answered
        for name in set(answered) & set(expected):
            np.testing.assert_allclose(np.asarray(answered[name]), expected[name], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("app", sorted(CONVERTING))
def test_an_empty_batch_gets_empty_answers_from_each_file(versions, app):
    saved = load_exported(versions[app]).signatures["serving_default"]
    request = {name: np.zeros([0, *[size or 16000 for size in spec.shape.as_list()[1:]]], spec.dtype.as_numpy_dtype)
               if spec.dtype != tf.string else np.zeros([0], object)
               for name, spec in saved.structured_input_signature[1].items()}
    expected = saved(**{name: tf.constant(value, saved.structured_input_signature[1][name].dtype)
                        for name, value in request.items()})
    for file_format in FORMAT_FILES:
        served = registered_app(app).from_file(load_file_export(versions[app] / FORMAT_FILES[file_format]))
        got = served.signature()(**request)
        assert sorted(got) == sorted(expected)
        assert all(got[name].shape[0] == 0 for name in got), (file_format, {k: v.shape for k, v in got.items()})


@pytest.mark.parametrize("app", ["speech", "transcriber"])
def test_a_waveform_the_savedmodel_refuses_is_refused_by_each_files_client(versions, app):
    saved = load_exported(versions[app]).signatures["serving_default"]
    for waveform, message in ((np.zeros([1, 0], np.float32), "needs at least one sample"),
                              (np.array([[0.1, np.nan]], np.float32), "must be finite"),
                              (np.array([[0.1, 4e4]], np.float32), "within ±32768")):
        with pytest.raises(tf.errors.InvalidArgumentError, match=f"waveform: .*{message}"):
            saved(waveform=tf.constant(waveform))
        for file_format in FORMAT_FILES:
            served = registered_app(app).from_file(load_file_export(versions[app] / FORMAT_FILES[file_format]))
            with pytest.raises(InputError, match=f"^waveform: .*{message}"):
                served.signature()(waveform=waveform)


def test_dynamic_int8_files_answer_close_to_the_savedmodel(versions):
    version = versions["speech"]
    saved = load_exported(version).signatures["serving_default"]
    request = _requests("speech", saved)[0]
    expected = saved(waveform=tf.constant(request["waveform"]))["probabilities"].numpy()
    for file_format in FORMAT_FILES:
        cli.run(["export", "speech", "--model", str(version), "--format", file_format, "--quantize", "dynamic"])
        path = version / format_file(file_format, quantized=True)
        assert json.loads(description_path(path).read_text())["quantized"] == "dynamic int8"
        assert path.stat().st_size < (version / FORMAT_FILES[file_format]).stat().st_size
        got = load_file_export(path).signature()(**request)["probabilities"].numpy()
        np.testing.assert_allclose(got.sum(axis=-1), 1.0, atol=1e-4)
        assert np.abs(got - expected).max() < 0.1, file_format


NUMBER = re.compile(r"-?\d+\.\d+")


@pytest.mark.parametrize("app", sorted(CONVERTING))
def test_predict_gives_the_savedmodels_answer_from_each_file(versions, app, capsys):
    version = versions[app]
    lines = {}
    for model in (version, *(version / file for file in FORMAT_FILES.values())):
        cli.run(["predict", app, "--model", str(model), *registered_app(app).example_inputs[:1]])
        lines[model.name] = capsys.readouterr().out.rstrip("\n").rsplit("\n", 1)[-1]
    # The same words, and numbers equal to float32 rounding (the runtimes sum in different orders).
    assert len({NUMBER.sub("#", line) for line in lines.values()}) == 1, lines
    numbers = [[float(value) for value in NUMBER.findall(line)] for line in lines.values()]
    np.testing.assert_allclose(numbers[1:], [numbers[0]] * (len(numbers) - 1), rtol=1e-6, atol=1e-4, err_msg=str(lines))


@pytest.mark.parametrize("app", ["stock", "transcriber", "chatbot"])
def test_evaluate_scores_a_file_on_the_savedmodels_data(versions, app):
    saved = cli.run(["evaluate", app, "--model", str(versions[app])])
    from_file = cli.run(["evaluate", app, "--model", str(versions[app] / FORMAT_FILES["onnx"])])
    # The same held-out data (the transcriber reads which from the export's metadata) and score.
    def counted(summary: str) -> str:
        return re.search(r" on (\d+ [^,;]+)", summary).group(1)

    assert counted(from_file.summary) == counted(saved.summary)
    assert from_file.value == pytest.approx(saved.value, rel=1e-4)


def test_bad_requests_get_one_line(versions, tmp_path, rejected, monkeypatch):
    stock_version = versions["stock"]
    with pytest.raises(InputError, match="give the SavedModel's folder"):
        cli.run(["export", "stock", "--model", str(stock_version / "model.onnx"), "--format", "litert"])
    assert "--format" in rejected(["export", "stock", "--model", str(stock_version), "--format", "coreml"])
    lonely = tmp_path / "model.onnx"
    shutil.copy(stock_version / "model.onnx", lonely)
    with pytest.raises(InputError, match=r"no readable model\.onnx\.json"):
        cli.run(["predict", "stock", "--model", str(lonely)])
    other = tmp_path / "notes.txt"
    other.write_text("hello")
    with pytest.raises(InputError, match=r"not a LiteRT \(\.tflite\) or ONNX \(\.onnx\) file"):
        cli.run(["predict", "stock", "--model", str(other)])
    old = tmp_path / "old" / "speech" / "1"
    shutil.copytree(versions["speech"], old)
    shutil.rmtree(old / "extra")  # as exports made before they kept their Keras model
    with pytest.raises(InputError, match=r"keeps no extra/model\.keras .* train it again"):
        cli.run(["export", "speech", "--model", str(old), "--format", "onnx"])
    stepless = tmp_path / "stepless" / "translation" / "1"
    shutil.copytree(versions["translation"], stepless)
    (stepless / "model.decode_step.onnx").unlink()
    with pytest.raises(InputError, match=r"model\.decode_step\.onnx is missing beside it"):
        cli.run(["predict", "translation", "--model", str(stepless / "model.onnx"), "hello"])
    (stepless / "extra" / "target_vocabulary.txt").unlink()  # as exports made before they kept it
    with pytest.raises(InputError, match=r"keeps no .*target_vocabulary\.txt .* train it again"):
        cli.run(["predict", "translation", "--model", str(stepless / "model.tflite"), "hello"])
    served = load_file_export(stock_version / "model.tflite").signature()
    with pytest.raises(InputError, match=r"input prices must be float32 with 2 dimensions, got .* shape \(3,\)"):
        served(prices=np.ones(3, np.float32))
    with pytest.raises(InputError, match=r"the litert runtime refused the inputs"):
        served(prices=np.ones((1, 3), np.float32))  # shorter than the window
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as on a machine without the onnx extra
    with pytest.raises(InputError, match=r'needs onnxruntime \(pip install -e "\.\[onnx\]"\)'):
        cli.run(["predict", "stock", "--model", str(stock_version / "model.onnx")])


@pytest.mark.parametrize("file_format", sorted(FORMAT_FILES))
@pytest.mark.parametrize("app", SEQ2SEQ)
def test_seq2seq_files_serve_every_signature_of_the_savedmodel(versions, app, file_format):
    version = versions[app]
    path = version / FORMAT_FILES[file_format]
    description = json.loads(description_path(path).read_text())
    assert list(description["signatures"]) == ["encode", "decode_step"]
    step_file = version / format_file(file_format, signature="decode_step")
    assert description["signatures"]["decode_step"]["file"] == step_file.name
    assert stat.S_IMODE(step_file.stat().st_mode) == 0o666 & ~current_umask()
    if file_format == "onnx":  # the step is the GRU cell's own ops, no loop
        assert "Loop" not in [node.op_type for node in onnx.load(str(step_file)).graph.node]
    saved = load_exported(version).signatures
    served = registered_app(app).from_file(load_file_export(path))
    assert sorted(served.signatures) == sorted(saved)
    texts = tf.constant(HOSTILE_TEXTS + ["the tall cat sleeps.", "is the cat in the house? the cat!"])
    requests = {"serving_default": [{"text": texts}], "attention": [{"text": texts}],
                "score": [{"text": texts, "context": texts[::-1], "reply": tf.roll(texts, 1, axis=0)}],
                # Sampling draws differently in each process; the deterministic decodings must agree.
                "converse": [{"text": texts, "context": texts[::-1], "decoding": tf.constant(decoding),
                              "temperature": tf.constant(1.0), "top_k": tf.constant(0), "top_p": tf.constant(1.0)}
                             for decoding in ("greedy", "beam")]}
    for name in saved:
        for request in requests[name]:
            expected, got = saved[name](**request), served.signature(name)(**request)
            assert sorted(got) == sorted(expected)
            for output, value in expected.items():
                if value.dtype.is_floating:  # teacher forcing by cell steps, not by the sequence kernel
                    np.testing.assert_allclose(got[output].numpy(), value.numpy(), rtol=1e-4, atol=1e-5)
                else:
                    np.testing.assert_array_equal(got[output].numpy(), value.numpy())


@pytest.mark.parametrize("file_format", sorted(FORMAT_FILES))
def test_a_client_without_tensorflow_decodes_as_the_savedmodel(versions, file_format):
    version = versions["chatbot"]  # trained with greedy decoding
    export = load_file_export(version / FORMAT_FILES[file_format])
    server = exported_server(version, export.metadata, None)
    assert server.decoding.strategy == "greedy" and not server.decoding.no_repeat_ngram
    texts = tf.constant(["hello", "is the cat in the house? the cat!", "what did you do today?"])
    client = subprocess.run([sys.executable, "-c", GREEDY_CLIENT, str(version / FORMAT_FILES[file_format]),
                             str(server.max_target_length)], capture_output=True, text=True, check=True,
                            input=json.dumps(server.source_ids(texts).numpy().tolist()))
    target_ids = json.loads(client.stdout.strip().splitlines()[-1])
    expected = load_exported(version).signatures["serving_default"](text=texts)["reply"]
    np.testing.assert_array_equal(server.reply_texts(texts, tf.constant(target_ids, tf.int64)).numpy(),
                                  expected.numpy())


def test_the_python_tokenizer_splits_as_the_graph_does():
    rng = random.Random(0)
    blocks = [(0x20, 0x7f), (0xa0, 0x250), (0x300, 0x400), (0x2000, 0x2070), (0x3000, 0x3100), (0xff00, 0xff60),
              (0x1f600, 0x1f650)]
    texts = HOSTILE_TEXTS + ["".join(chr(rng.randrange(*rng.choice(blocks))) for _ in range(rng.randint(0, 20)))
                             for _ in range(1000)]
    in_graph = [[token.decode() for token in row] for row in tokenize(tf.constant(texts)).to_list()]
    assert [reference_tokens(text) for text in texts] == in_graph
    assert reference_tokens(b"bad \xff bytes") == [token.decode() for token in
                                                    tokenize(tf.constant([b"bad \xff bytes"])).to_list()[0]]
