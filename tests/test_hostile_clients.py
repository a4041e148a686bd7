"""Property-based tests of `gru-suite serve` against hostile clients: a real server on 127.0.0.1
over every app's tiny export, and requests Hypothesis makes up: any JSON body (any nesting, up to
the body limit), bytes that are not JSON or not UTF-8, bodies nested far too deep, any path,
method, model, version and signature name, and instances of the wrong type, shape or dtype.

The properties, for every request:

- the answer is never a 5xx;
- every 4xx body is a JSON object whose one field, `error`, is a one-line message;
- the good request that follows it still gets the export's own answer.

The number of requests is a multiple of the Hypothesis profile's examples (`tests/conftest.py`).
"""

from __future__ import annotations

import json
import math
import urllib.parse
from typing import Any

import httpx
import numpy as np
import pytest
import tensorflow as tf
from conftest import Server, running_server
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.common.app import signature_inputs
from apps.common.running import load_export, registered_app
from apps.registry import REGISTRY, load_app_packages
from apps.serve.rest import json_depth

load_app_packages()
APPS = REGISTRY.apps()
MAX_BODY_MB = 1
# Requests per property: three times the profile's examples (12 in `ci`, 400 in `soak`).
REQUESTS = 3 * settings.default.max_examples
GOOD_TEXT = "not bad at all"
METHODS = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")


@pytest.fixture(scope="module")
def server(smoke_exports, tmp_path_factory) -> Server:
    models = next(iter(smoke_exports.values())).path.parent.parent  # <models>/<app>/1
    with running_server(models, tmp_path_factory.mktemp("hostile") / "serve.log", APPS,
                        "--max-body-mb", str(MAX_BODY_MB), "--no-page") as running:
        yield running


@pytest.fixture(scope="module")
def specs(smoke_exports) -> dict[str, dict[str, dict[str, tf.TensorSpec]]]:
    """App -> signature -> its inputs' specs, as the server reads them."""
    exports = {name: load_export(registered_app(name), smoke_exports[name].path) for name in APPS}
    return {name: {signature: signature_inputs(function) for signature, function in export.signatures.items()}
            for name, export in exports.items()}


@pytest.fixture(scope="module")
def good(smoke_exports) -> dict[str, Any]:
    """The sentiment export's own answer to `GOOD_TEXT`, as the server's JSON gives it."""
    export = load_export(registered_app("sentiment"), smoke_exports["sentiment"].path)
    outputs = export.signature()(text=tf.constant([GOOD_TEXT]))
    return {"label": outputs["label"].numpy()[0].decode(), "probability": float(outputs["probability"].numpy()[0])}


def check_answer(answer: httpx.Response, method: str = "POST") -> None:
    """The first two properties, for one answer."""
    assert answer.status_code < 500, answer.text[:2000]
    if answer.status_code >= 400 and method != "HEAD":
        assert answer.headers["content-type"] == "application/json", answer.headers
        body = answer.json()
        assert isinstance(body, dict) and list(body) == ["error"], body
        message = body["error"]
        assert isinstance(message, str) and message.strip() and "\n" not in message, body


def check_still_served(server: Server, good: dict[str, Any]) -> None:
    """The third property: a good request gets the export's answer."""
    answer = server.post("/v1/models/sentiment:predict", {"instances": [GOOD_TEXT]})
    assert answer.status_code == 200, answer.text
    (prediction,) = answer.json()["predictions"]
    assert prediction["label"] == good["label"]
    assert math.isclose(prediction["probability"], good["probability"], rel_tol=1e-5, abs_tol=1e-6)


# JSON values of every kind, nested (NaN and Infinity as Python's json writes them, as a client may).
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=40,
)
FIELD_NAMES = st.sampled_from(["instances", "inputs", "signature_name"]) | st.text(max_size=12)


def _model_path(model: str) -> str:
    return f"/v1/models/{urllib.parse.quote(model, safe='')}:predict"


@given(model=st.sampled_from(APPS), body=st.dictionaries(FIELD_NAMES, JSON_VALUES, max_size=4) | JSON_VALUES)
@settings(max_examples=REQUESTS)
def test_any_json_body_gets_a_4xx_or_an_answer(server, good, model, body):
    answer = server.post(_model_path(model), json.dumps(body).encode())
    check_answer(answer)
    check_still_served(server, good)


@st.composite
def _value(draw, spec: tf.TensorSpec) -> Any:
    """A JSON value for an input of `spec`: often of its dtype and rank, often not."""
    if spec.dtype == tf.string:
        leaf = st.text(max_size=40) | st.builds(lambda text: {"b64": text}, st.text(max_size=12))
    elif spec.dtype.is_floating:
        leaf = st.floats() | st.floats(-1, 1)
    else:
        leaf = st.integers(-2**40, 2**40) | st.integers(-3, 8)
    leaf = leaf | JSON_VALUES if draw(st.integers(0, 3)) == 0 else leaf
    sizes = st.integers(0, 3) | st.sampled_from([size for size in spec.shape.as_list() if size] or [0])

    def nested(rank: int) -> Any:
        return draw(leaf) if rank == 0 else [nested(rank - 1) for _ in range(draw(sizes))]

    return nested(spec.shape.rank if draw(st.integers(0, 4)) else draw(st.integers(0, 4)))


@st.composite
def _predict_request(draw, specs: dict[str, dict[str, dict[str, tf.TensorSpec]]]) -> tuple[str, dict]:
    """A request in either format for a signature of an export, its inputs drawn by `_value`."""
    model = draw(st.sampled_from(APPS))
    signature = draw(st.sampled_from(sorted(specs[model])))
    inputs = specs[model][signature]
    names = sorted(inputs) + ([draw(st.text(max_size=8))] if draw(st.integers(0, 5)) == 0 else [])
    names = draw(st.lists(st.sampled_from(names), unique=True, min_size=1, max_size=len(names)))
    value = {name: draw(_value(inputs.get(name, tf.TensorSpec([None], tf.string)))) for name in names}
    if draw(st.booleans()):
        body = {"inputs": value}
    else:
        body = {"instances": [{name: item[0] if isinstance(item, list) and item else item
                               for name, item in value.items()} for _ in range(draw(st.integers(0, 3)))]}
    if signature != "serving_default" or draw(st.booleans()):
        body["signature_name"] = signature
    return model, body


@given(data=st.data())
@settings(max_examples=REQUESTS)
def test_instances_of_any_type_shape_or_dtype_get_a_4xx_or_an_answer(server, good, specs, data):
    model, body = data.draw(_predict_request(specs))
    check_answer(server.post(_model_path(model), json.dumps(body).encode()))
    check_still_served(server, good)


RAW_BODIES = (
    st.binary(max_size=200)
    | st.text(max_size=200).map(lambda text: text.encode("utf-8"))
    # Nested deeper than any parser should recurse, inside a request or alone.
    | st.integers(1, 200_000).map(lambda depth: b"[" * depth + b"]" * depth)
    | st.integers(1, 100_000).map(lambda depth: b'{"instances": ' + b'{"a": ' * depth + b"1" + b"}" * depth + b"}")
    | st.integers(MAX_BODY_MB * 2**20 - 64, MAX_BODY_MB * 2**20 + 64).map(
        lambda size: b'{"instances": ["' + b"a" * (size - 20) + b'"]}')
)


@given(body=RAW_BODIES)
@settings(max_examples=REQUESTS)
def test_bytes_that_are_not_a_request_get_a_4xx(server, good, body):
    answer = server.post("/v1/models/sentiment:predict", body)
    check_answer(answer)
    if answer.status_code == 200:  # only a request that happens to be valid
        assert json.loads(body)["instances"]
    check_still_served(server, good)


PATH_PARTS = st.sampled_from([*APPS, "1", "versions", "metadata", ":predict", ""]) | st.text(max_size=12)


@st.composite
def _path(draw) -> str:
    """A path under /v1/: an API route with made-up parts, or any."""
    model = draw(st.sampled_from(APPS) | st.text(min_size=1, max_size=12))
    version = draw(st.integers(-1, 3).map(str) | st.integers(0, 2**70).map(str) | st.text(min_size=1, max_size=8))
    route = draw(st.sampled_from(["", "/versions/{version}", "/metadata", "/versions/{version}/metadata",
                                  ":predict", "/versions/{version}:predict"]))
    if draw(st.integers(0, 4)) == 0:
        parts = draw(st.lists(PATH_PARTS, max_size=5))
        return "/v1/" + "/".join(urllib.parse.quote(part, safe=":") for part in parts)
    quoted = urllib.parse.quote(model, safe="")
    return f"/v1/models/{quoted}" + route.format(version=urllib.parse.quote(version, safe=""))


@given(method=st.sampled_from(METHODS), path=_path(), body=st.none() | JSON_VALUES)
@settings(max_examples=REQUESTS)
def test_any_method_and_path_under_v1_gets_a_4xx_or_an_answer(server, good, method, path, body):
    content = None if body is None else json.dumps(body).encode()
    answer = server.client.request(method, path, content=content)
    check_answer(answer, method)
    check_still_served(server, good)


def _nesting(value: Any) -> int:
    if isinstance(value, (list, dict)):
        items = value.values() if isinstance(value, dict) else value
        return 1 + max(map(_nesting, items), default=0)
    return 0


@given(value=JSON_VALUES, keys=st.text(alphabet='[]{}"\\', max_size=6), ascii_only=st.booleans())
def test_the_depth_scan_sees_what_the_parser_would_build(value, keys, ascii_only):
    value = {keys: value, keys + "\\": [keys]}  # brackets, quotes and backslashes inside strings
    assert json_depth(json.dumps(value, ensure_ascii=ascii_only).encode()) == _nesting(value)


def test_a_body_nested_too_deep_is_refused_before_parsing(server, good):
    for body in (b"[" * 100_000 + b"]" * 100_000, b'{"instances": [' + b"[" * 70 + b'"x"' + b"]" * 71 + b"}"):
        answer = server.post("/v1/models/sentiment:predict", body)
        assert answer.status_code == 400
        assert "nests" in answer.json()["error"] and "over the limit of 64" in answer.json()["error"]
    within = b'{"instances": ' + b"[" * 60 + b'"x"' + b"]" * 60 + b"}"  # parsed, then refused by its shape
    assert "has shape [1, 1," in server.post("/v1/models/sentiment:predict", within).json()["error"]
    check_still_served(server, good)


@pytest.mark.parametrize("app", ["speech", "transcriber"])
def test_a_waveform_without_samples_or_with_non_finite_ones_is_refused(server, app):
    path = f"/v1/models/{app}:predict"
    for waveform, message in (([[]], "waveform: a waveform needs at least one sample"),
                              ([[0.1, float("nan"), 0.2]], "waveform: every sample must be finite"),
                              ([[0.1, float("inf")]], "waveform: every sample must be finite"),
                              ([[0.1, 1e20]], "within ±32768")):
        answer = server.post(path, json.dumps({"inputs": waveform}).encode())
        assert answer.status_code == 400, answer.text
        assert message in answer.json()["error"]
    assert server.post(path, {"inputs": np.zeros((1, 1600)).tolist()}).status_code == 200
