"""`gru-suite serve`: a real server on 127.0.0.1 over a tiny export of every app.

The requests and the expected answers follow TensorFlow Serving's
`api_rest.md`: status, metadata, and predict in the row (`instances`) and
columnar (`inputs`) formats, with a named signature and a version path. The
answers are checked against the same exports called in this process.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import tensorflow as tf

from conftest import Server, running_server

from apps.common.app import Export, signature_inputs
from apps.common.audio import SAMPLE_RATE, load_audio
from apps.common.running import load_export, registered_app, train_app
from apps.registry import REGISTRY, load_app_packages
from apps.stock.calibration import history_length
from apps.stock.settings import StockTrain

load_app_packages()
APPS = REGISTRY.apps()
# The tests below change this model's versions; the others stay at version 1.
VERSIONED = "stock_versions"
# Prices per stock request: the smoke export's window and the history its calibration reads.
STOCK_HISTORY = history_length(StockTrain().window, StockTrain().horizon, StockTrain().interval_calibration)
# A streaming word recogniser (one of conftest's `SMOKE_VARIANTS`), for `stream` over REST.
STREAMING = "speech_streaming"
# A streaming transcriber, for the page's live microphone: trained in about 35 s on copies of the
# app's example (`_example_copies`), so that it hears a word in it and nothing in silence.
LIVE = "transcriber_streaming"
LIVE_TRAINING = ("--streaming", "--epochs", "16", "--batch-size", "8", "--units", "32", "--layers", "1",
                 "--conv-filters", "16", "--learning-rate", "1e-2", "--decoding", "greedy")
MAX_BODY_MB = 1
# Debian's chromium, where it is installed and executable (None elsewhere).
CHROMIUM = shutil.which("chromium")


@pytest.fixture(scope="module")
def models(tmp_path_factory, smoke_exports, smoke_variants) -> Path:
    """A copy of the shared tiny exports, with a second stock model whose versions the tests change,
    the streaming word recogniser and a transcriber trained to hear the example (`LIVE`)."""
    root = tmp_path_factory.mktemp("served") / "models"
    for name in APPS:
        shutil.copytree(smoke_exports[name].path.parent, root / name)
    shutil.copytree(root / "stock", root / VERSIONED)
    shutil.copytree(smoke_variants[STREAMING].path.parent, root / STREAMING)
    cwd = Path.cwd()
    os.chdir(root.parent)  # the run folders go there
    try:
        report = train_app("transcriber", [*LIVE_TRAINING, "--data", str(_example_copies(root.parent / "example")),
                                           "--verbose", "0", "--export-dir", str(root.parent / LIVE), "--no-log"])
        shutil.copytree(Path(report.export_path).parent, root / LIVE)
    finally:
        os.chdir(cwd)
    return root


def _example_copies(folder: Path) -> Path:
    """A transcribed folder of the transcriber's example: 48 copies to train on, half of them followed
    by 0.5 to 2.5 s of silence; one copy each to validate and test."""
    import soundfile

    from apps.transcriber.app import EXAMPLE

    speech = load_audio(EXAMPLE)
    silences = np.random.default_rng(0).integers(SAMPLE_RATE // 2, 5 * SAMPLE_RATE // 2, size=48)
    for split, count in (("train", 48), ("validation", 1), ("test", 1)):
        (folder / split).mkdir(parents=True)
        for index in range(count):
            silence = np.zeros(silences[index] if split == "train" and index % 2 else 0, np.float32)
            soundfile.write(folder / split / f"{index}.flac", np.concatenate([speech, silence]), SAMPLE_RATE)
            (folder / split / f"{index}.txt").write_text("four two seven\n")
    return folder


@pytest.fixture(scope="module")
def exports(models) -> dict[str, Export]:
    """The same exports, loaded in this process: the answers the server must give."""
    return {name: load_export(registered_app(name), models / name) for name in APPS}


@pytest.fixture(scope="module")
def server(models, tmp_path_factory):
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    with running_server(models, log, [*APPS, VERSIONED, STREAMING, LIVE], "--poll-seconds", "0.5",
                        "--max-body-mb", str(MAX_BODY_MB)) as running:
        yield running


def _batch(example: dict[str, Any], size: int) -> dict[str, list]:
    return {name: [value] * size for name, value in example.items()}


def _reference(export: Export, columns: dict[str, list], signature: str = "serving_default") -> dict[str, np.ndarray]:
    function = export.signatures[signature]
    specs = signature_inputs(function)
    outputs = function(**{name: tf.constant(value, specs[name].dtype) for name, value in columns.items()})
    return {name: value.numpy() for name, value in outputs.items()}


def _assert_same(answered: Any, expected: np.ndarray, exact_strings: bool = True) -> None:
    if expected.dtype == object:
        answered = np.array(answered, dtype=object)
        assert answered.shape == expected.shape
        if exact_strings:
            assert answered.tolist() == np.vectorize(lambda b: b.decode("utf-8"), otypes=[object])(expected).tolist()
        else:
            assert all(isinstance(item, str) for item in answered.flat)
    else:
        np.testing.assert_allclose(np.asarray(answered, dtype=np.float64), expected, rtol=1e-5, atol=1e-6)


def _assert_rows(predictions: Any, expected: dict[str, np.ndarray], exact_strings: bool = True) -> None:
    """`predictions` as TensorFlow Serving shapes rows: a list per instance, of values or of {output: value}."""
    names = sorted(expected)
    size = len(expected[names[0]])
    assert isinstance(predictions, list) and len(predictions) == size
    if len(names) == 1:
        _assert_same(predictions, expected[names[0]], exact_strings)
        return
    assert all(isinstance(row, dict) and sorted(row) == names for row in predictions)
    for name in names:
        _assert_same([row[name] for row in predictions], expected[name], exact_strings)


def _assert_columns(outputs: Any, expected: dict[str, np.ndarray], exact_strings: bool = True) -> None:
    """`outputs` as TensorFlow Serving shapes columns: the tensor itself, or {output: tensor}."""
    if len(expected) == 1:
        outputs = {next(iter(expected)): outputs}
    assert isinstance(outputs, dict) and sorted(outputs) == sorted(expected)
    for name, value in expected.items():
        _assert_same(outputs[name], value, exact_strings)


@pytest.mark.parametrize("name", APPS)
def test_status_names_the_available_version(server, name):
    expected = {"model_version_status": [{"version": "1", "state": "AVAILABLE",
                                          "status": {"error_code": "OK", "error_message": ""}}]}
    assert server.get(f"/v1/models/{name}").json() == expected
    assert server.get(f"/v1/models/{name}/versions/1").json() == expected
    missing = server.get(f"/v1/models/{name}/versions/7")
    assert missing.status_code == 404
    assert missing.json() == {"error": f"Servable not found for request: Specific({name}, 7)"}


@pytest.mark.parametrize("name", APPS)
def test_metadata_describes_every_signature(server, exports, name):
    for path in (f"/v1/models/{name}/metadata", f"/v1/models/{name}/versions/1/metadata"):
        answer = server.get(path)
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["model_spec"] == {"name": name, "signature_name": "", "version": "1"}
        signatures = body["metadata"]["signature_def"]["signature_def"]
        assert sorted(signatures) == sorted(exports[name].signatures)
        for signature, function in exports[name].signatures.items():
            described = signatures[signature]
            assert described["method_name"] == "tensorflow/serving/predict"
            for input_name, spec in signature_inputs(function).items():
                info = described["inputs"][input_name]
                assert info["dtype"] == "DT_" + {"string": "STRING", "float32": "FLOAT", "int32": "INT32"}[
                    spec.dtype.name]
                assert [int(dim["size"]) for dim in info["tensor_shape"]["dim"]] == [
                    -1 if size is None else size for size in spec.shape.as_list()]
            assert sorted(described["outputs"]) == sorted(function.structured_outputs)


@pytest.mark.parametrize("name", APPS)
def test_predict_answers_rows_and_columns_as_the_export_does(server, exports, name):
    app = registered_app(name)
    example = app.serving_example(exports[name])
    expected = _reference(exports[name], _batch(example, 2))
    exact = not app.generates_text  # a generated reply may be sampled
    named_rows = {"instances": [example, example]}
    requests = [(f"/v1/models/{name}:predict", named_rows),
                (f"/v1/models/{name}/versions/1:predict", named_rows),
                (f"/v1/models/{name}:predict", {"signature_name": "serving_default", **named_rows})]
    if len(example) == 1:
        requests.append((f"/v1/models/{name}:predict", {"instances": [*_batch(example, 2).values()][0]}))
    for path, body in requests:
        answer = server.post(path, body)
        assert answer.status_code == 200, (path, answer.text)
        assert list(answer.json()) == ["predictions"]
        _assert_rows(answer.json()["predictions"], expected, exact)

    columns = [{"inputs": _batch(example, 2)}]
    if len(example) == 1:
        columns.append({"inputs": [*_batch(example, 2).values()][0]})
    for body in columns:
        answer = server.post(f"/v1/models/{name}:predict", body)
        assert answer.status_code == 200, answer.text
        assert list(answer.json()) == ["outputs"]
        _assert_columns(answer.json()["outputs"], expected, exact)


def test_named_signatures_with_several_inputs(server, exports):
    attention_rows = {"signature_name": "attention", "instances": ["the tall cat sleeps."]}
    answer = server.post("/v1/models/translation:predict", attention_rows)
    assert answer.status_code == 200, answer.text
    _assert_rows(answer.json()["predictions"], _reference(exports["translation"], {"text": ["the tall cat sleeps."]},
                                                          "attention"))

    pairs = [{"text": "hello", "context": "", "reply": "hi there"},
             {"text": "what is your name", "context": "hello", "reply": "i am a bot"}]
    answer = server.post("/v1/models/chatbot:predict", {"signature_name": "score", "instances": pairs})
    assert answer.status_code == 200, answer.text
    columns = {key: [pair[key] for pair in pairs] for key in pairs[0]}
    _assert_rows(answer.json()["predictions"], _reference(exports["chatbot"], columns, "score"))

    converse = {"text": ["hello", "do you like music"], "context": ["", "hello"], "decoding": "sample",
                "temperature": 0.8, "top_k": 5, "top_p": 0.9}
    answer = server.post("/v1/models/chatbot:predict", {"signature_name": "converse", "inputs": converse})
    assert answer.status_code == 200, answer.text
    replies = answer.json()["outputs"]
    assert len(replies) == 2 and all(isinstance(reply, str) for reply in replies)
    refused = server.post("/v1/models/chatbot:predict", {"signature_name": "converse", "instances": [
        {key: value[0] if isinstance(value, list) else value for key, value in converse.items()}]})
    assert refused.status_code == 400
    assert "scalars" in refused.json()["error"] and "temperature" in refused.json()["error"]


def test_stream_over_rest_carries_the_state_in_the_request_and_the_response(server, models):
    export = load_export(registered_app("speech"), models / STREAMING)
    rng = np.random.default_rng(5)
    clip = rng.normal(0, 0.05, size=(1, 8000)).astype(np.float32)
    clip[0, 2000:5000] += np.sin(np.arange(3000) / 5).astype(np.float32)
    path = f"/v1/models/{STREAMING}:predict"
    answer = server.post(path, {"signature_name": "initial_state", "inputs": {"batch_size": 1}})
    assert answer.status_code == 200, answer.text
    state = answer.json()["outputs"]
    for start in range(0, clip.shape[1], 1600):  # 100 ms chunks
        answer = server.post(path, {"signature_name": "stream",
                                    "inputs": {"waveform_chunk": clip[:, start:start + 1600].tolist(), **state}})
        assert answer.status_code == 200, answer.text
        outputs = answer.json()["outputs"]
        state = {name: value for name, value in outputs.items() if name.startswith("state_")}
    expected = export.signature("stream")(waveform_chunk=tf.constant(clip),
                                          **export.signature("initial_state")(batch_size=tf.constant(1)))
    np.testing.assert_allclose(outputs["probabilities"], expected["probabilities"].numpy(), rtol=1e-4, atol=1e-5)
    assert outputs["label"] == [value.decode() for value in expected["label"].numpy()]
    partial = server.post(path, {"signature_name": "stream", "inputs": {"waveform_chunk": clip[:, :100].tolist(),
                                                                         **state}})
    assert partial.status_code == 400
    assert "waveform_chunk: a chunk holds a whole number of 160-sample (10 ms) steps" in partial.json()["error"]


def _stock_rows(server: Server, path: str = f"/v1/models/{VERSIONED}:predict") -> httpx.Response:
    return server.post(path, {"instances": [[100.0 + day for day in range(STOCK_HISTORY)]]})


def test_a_new_version_is_served_without_a_restart_and_a_partial_one_never(server, models):
    model_dir = models / VERSIONED
    partial = model_dir / ".partial-12345-new"
    shutil.copytree(model_dir / "1", partial)
    time.sleep(3)  # six polls
    assert server.version(VERSIONED) == "1"
    assert _stock_rows(server, f"/v1/models/{VERSIONED}/versions/2:predict").status_code == 404

    partial.rename(model_dir / "2")
    deadline = time.monotonic() + 120
    while server.version(VERSIONED) != "2":
        answer = _stock_rows(server)  # the old version answers while the new one loads
        assert answer.status_code == 200, answer.text
        assert time.monotonic() < deadline, server.log.read_text()[-3000:]
        time.sleep(0.2)
    assert _stock_rows(server, f"/v1/models/{VERSIONED}/versions/2:predict").status_code == 200
    assert _stock_rows(server, f"/v1/models/{VERSIONED}/versions/1:predict").status_code == 404
    assert "stock_versions: serving version 2 (was version 1)" in server.log.read_text()


_TOO_BIG = b'{"instances": ["' + b"a" * (MAX_BODY_MB * 2**20 + 10) + b'"]}'

BAD_REQUESTS = {
    "malformed JSON": ("sentiment", b'{"instances": ["good"', 400, "malformed JSON"),
    "not an object": ("sentiment", b'["good"]', 400, "must be a JSON object"),
    "neither format": ("sentiment", {"signature_name": "serving_default"}, 400, "exactly one of"),
    "both formats": ("sentiment", {"instances": ["a"], "inputs": ["a"]}, 400, "exactly one of"),
    "unknown field": ("sentiment", {"instances": ["a"], "batch": 1}, 400, "'batch'"),
    "unknown model": ("no_such_model", {"instances": ["a"]}, 404,
                      "Servable not found for request: Latest(no_such_model)"),
    "unknown version": ("sentiment/versions/9", {"instances": ["a"]}, 404,
                        "Servable not found for request: Specific(sentiment, 9)"),
    "version not a number": ("sentiment/versions/one", {"instances": ["a"]}, 400, "whole number"),
    "unknown signature": ("sentiment", {"signature_name": "nope", "instances": ["a"]}, 404,
                          "signature 'nope' not found"),
    "wrong input name": ("sentiment", {"instances": [{"txt": "a"}]}, 400, "unknown input(s) 'txt'"),
    "missing input": ("chatbot", {"signature_name": "score", "instances": [{"text": "a", "reply": "b"}]}, 400,
                      "missing input(s) context"),
    "numbers for strings": ("sentiment", {"instances": [1, 2]}, 400, "takes strings"),
    "strings for numbers": ("stock", {"instances": [["1"] * STOCK_HISTORY]}, 400, "takes float32 numbers, not strings"),
    "wrong shape": ("stock", {"instances": [[1.0, 2.0]]}, 400, "has shape [1, 2]"),
    "ragged rows": ("stock", {"inputs": [[1.0] * STOCK_HISTORY, [1.0] * 19]}, 400, "different lengths"),
    "int out of range": ("chatbot", {"signature_name": "converse", "inputs": {
        "text": ["a"], "context": [""], "decoding": "", "temperature": 1.0, "top_k": 2**40, "top_p": 1.0}},
        400, "range"),
    "scalar given a list": ("chatbot", {"signature_name": "converse", "inputs": {
        "text": ["a"], "context": [""], "decoding": "", "temperature": [1.0], "top_k": 0, "top_p": 1.0}},
        400, "input 'temperature' has shape [1]"),
    "unknown decoding": ("chatbot", {"signature_name": "converse", "inputs": {
        "text": ["a"], "context": [""], "decoding": "fast", "temperature": 1.0, "top_k": 0, "top_p": 1.0}},
        400, "decoding must be one of greedy, beam, sample"),
    "prices the model refuses": ("stock", {"instances": [[-1.0] * STOCK_HISTORY]}, 400, "the model refused the input"),
    "empty instances": ("sentiment", {"instances": []}, 400, "\"instances\" is empty"),
    "bad base64": ("sentiment", {"instances": [{"b64": "***"}]}, 400, "not valid base64"),
    "not UTF-8": ("sentiment", b'{"instances": ["caf\xe9"]}', 400, "not UTF-8"),
    "over the size limit": ("sentiment", _TOO_BIG, 413, "over the limit"),
}


@pytest.mark.parametrize("case", BAD_REQUESTS)
def test_a_bad_request_gets_a_4xx_json_error_and_the_server_goes_on(server, exports, case):
    model, body, status, message = BAD_REQUESTS[case]
    answer = server.post(f"/v1/models/{model}:predict", body)
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/json"
    assert list(answer.json()) == ["error"] and message in answer.json()["error"], answer.json()
    good = server.post("/v1/models/sentiment:predict", {"instances": ["not bad at all"]})
    assert good.status_code == 200, good.text


def test_a_streamed_body_over_the_limit_is_cut_off(server):
    def chunks():  # no content-length: the server counts what arrives
        yield b'{"instances": ["'
        for _ in range(MAX_BODY_MB * 4):
            yield b"a" * 2**18
        yield b'"]}'

    answer = server.client.post("/v1/models/sentiment:predict", content=chunks())
    assert answer.status_code == 413 and "over the limit" in answer.json()["error"]


def test_an_unknown_endpoint_gets_a_json_404(server):
    answer = server.get("/v1/modelz/sentiment")
    assert answer.status_code == 404 and "no such endpoint" in answer.json()["error"]


def _served_label(server: Server, model: str, example: dict[str, Any]) -> str:
    answer = server.post(f"/v1/models/{model}:predict", {"instances": [example]})
    return answer.json()["predictions"][0]["label"]


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_the_page_in_a_real_browser(server, exports):
    """Sentiment and speech on the page answer as the REST API does, stock says what history its calibrated
    interval read, the chatbot where its reply came from; nothing is fetched from outside."""
    from playwright.sync_api import expect, sync_playwright

    review = "a moving, beautifully acted film"
    clip = registered_app("speech").example_inputs[0]
    sentiment = _served_label(server, "sentiment", {"text": review})
    word = _served_label(server, "speech", registered_app("speech").serving_example(exports["speech"]))
    outside: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.on("request", lambda request: None if request.url.startswith((server.url, "data:", "blob:"))
                else outside.append(request.url))
        page.goto(server.url + "/", wait_until="load")

        page.get_by_role("tab", name="sentiment", exact=True).click()
        panel = page.get_by_role("tabpanel")
        panel.get_by_label("A movie review").fill(review)
        panel.get_by_role("button", name="Classify").click()
        expect(panel.get_by_test_id("label-output-value")).to_have_text(sentiment, timeout=60_000)
        expect(panel.locator("img").first).to_be_visible(timeout=60_000)

        page.get_by_role("tab", name="speech", exact=True).click()
        panel = page.get_by_role("tabpanel")
        panel.locator("input[type=file]").first.set_input_files(clip)
        panel.get_by_role("button", name="Recognize").click()
        expect(panel.get_by_test_id("label-output-value")).to_have_text(word, timeout=60_000)

        page.get_by_role("tab", name="stock", exact=True).click()
        panel = page.get_by_role("tabpanel")
        panel.get_by_role("button", name="Forecast").click()
        expect(panel.get_by_text(f"The model read the last {STOCK_HISTORY} prices (a window of")).to_contain_text(
            "the interval is calibrated on the model's recent errors", timeout=60_000)

        page.get_by_role("tab", name="chatbot", exact=True).click()
        panel = page.get_by_role("tabpanel")
        panel.get_by_label("Your message").fill("hello")
        panel.get_by_role("button", name="Send").click()
        expect(panel.get_by_text("(generated)")).to_be_visible(timeout=60_000)  # the shared export generates
        browser.close()
    assert not outside, f"the page fetched from outside 127.0.0.1: {outside[:5]}"


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (apt-get install chromium)")
def test_the_live_microphone_transcribes_while_the_audio_plays(server, tmp_path):
    """Chromium's fake microphone plays a WAV file once into the transcriber tab's live microphone: text
    appears before the file ends, and after Stop the live transcript is the REST API's for the audio
    the model heard (the page offers it; Gradio's page drops what the microphone hears until the
    stream's first event is answered, so it may be less than the file).
    """
    import io

    import soundfile
    from playwright.sync_api import expect, sync_playwright

    from apps.transcriber.app import EXAMPLE

    silence = np.zeros(SAMPLE_RATE, np.float32)  # a second before the words and two after
    wav = tmp_path / "microphone.wav"
    soundfile.write(wav, np.concatenate([silence, load_audio(EXAMPLE), silence, silence]), SAMPLE_RATE,
                    subtype="PCM_16")
    file_seconds = soundfile.info(wav).duration
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}%noloop"])
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(server.url + "/", wait_until="load")
        page.get_by_role("tab", name=LIVE, exact=True).click()
        panel = page.get_by_role("tabpanel")
        live = panel.get_by_label("Live transcript")
        panel.get_by_role("button", name="Record").last.click()  # the live microphone's
        started = time.monotonic()
        first_text_after = None
        while time.monotonic() - started < file_seconds + 1:
            if first_text_after is None and live.input_value():
                first_text_after = time.monotonic() - started
            time.sleep(0.05)
        panel.get_by_role("button", name="Stop").click()
        download = panel.locator("a[download]").last
        download.wait_for(state="attached", timeout=30_000)
        heard = server.get(download.get_attribute("href").removeprefix(server.url))
        assert heard.status_code == 200, heard.text
        waveform, rate = soundfile.read(io.BytesIO(heard.content), dtype="float32")
        assert rate == SAMPLE_RATE and len(waveform) > SAMPLE_RATE
        answer = server.post(f"/v1/models/{LIVE}:predict", {"instances": [waveform.tolist()]})
        assert answer.status_code == 200, answer.text
        expect(live).to_have_value(answer.json()["predictions"][0]["transcript"], timeout=30_000)
        browser.close()
    assert first_text_after is not None and first_text_after < file_seconds, (
        f"no text before the {file_seconds:.2f} s file ended (first after {first_text_after} s)")
