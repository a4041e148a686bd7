"""TensorFlow Serving's REST API (`api_rest.md`) over a `ModelRepository`.

Routes, as TensorFlow Serving has them:

- `GET  /v1/models/{model}[/versions/{version}]`: `model_version_status`;
- `GET  /v1/models/{model}[/versions/{version}]/metadata`: the signature defs;
- `POST /v1/models/{model}[/versions/{version}]:predict`: a row (`instances`)
  or columnar (`inputs`) request, answered with `predictions` or `outputs`.

Errors are `{"error": "..."}` with 400 (a malformed request), 404 (no such
model, version or signature), 413 (a body over the limit) or 500 (the
server's own failure). Model calls run in worker threads, never on the event
loop, at most `max_concurrent_calls` at a time (see `ModelRepository`).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

import anyio.to_thread
import numpy as np
import tensorflow as tf
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from tensorflow.core.framework import types_pb2

from apps.common.app import signature_inputs
from apps.common.errors import first_line
from apps.serve.repository import ModelRepository, NotFound, ServedVersion

PREDICT_METHOD = "tensorflow/serving/predict"
DEFAULT_SIGNATURE = "serving_default"
MAX_VERSION = 2**63 - 1  # TensorFlow Serving's versions are int64
# Arrays and objects inside one another in a request body: the request object, an instance's
# object, and a tensor of any rank TensorFlow Serving takes fit well within it.
MAX_JSON_DEPTH = 64
_NUMBER_KINDS = {"f": "iuf", "i": "iu", "u": "iu", "b": "b"}  # spec dtype kind -> JSON value kinds taken


class RequestError(Exception):
    """The caller's mistake: an HTTP status and the message for `{"error": ...}`."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class JSONWithNaN(Response):
    """JSON that writes NaN and Infinity as TensorFlow Serving does (strict JSON has no such tokens)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return json.dumps(content, allow_nan=True, ensure_ascii=False).encode("utf-8")


def error_response(status: int, message: str) -> JSONWithNaN:
    return JSONWithNaN({"error": message}, status_code=status)


# ----------------------------------------------------------------------------
# Request bodies -> tensors
# ----------------------------------------------------------------------------


def json_depth(body: bytes) -> int:
    """How deep the arrays and objects of a JSON text nest (brackets inside strings do not count),
    found without parsing it, from the positions of its quotes, backslashes and brackets."""
    text = np.frombuffer(body, np.uint8)
    quotes = np.flatnonzero(text == ord('"'))
    backslashes = np.flatnonzero(text == ord("\\"))
    if len(backslashes) and len(quotes):
        # The character after an odd run of backslashes is escaped: a quote so escaped is no quote.
        run_ends = np.flatnonzero(np.diff(backslashes, append=-2) != 1)
        escaped = backslashes[run_ends[np.diff(run_ends, prepend=-1) % 2 == 1]] + 1
        quotes = np.setdiff1d(quotes, escaped, assume_unique=True)
    opening = (text == ord("[")) | (text == ord("{"))
    brackets = np.flatnonzero(opening | (text == ord("]")) | (text == ord("}")))
    brackets = brackets[np.searchsorted(quotes, brackets) % 2 == 0]  # an even number of quotes before
    steps = np.where(opening[brackets], 1, -1)
    return int(np.cumsum(steps).max()) if len(steps) else 0


def parse_body(body: bytes) -> dict[str, Any]:
    """The JSON object of a predict request (a `RequestError` for anything else).

    A body nesting over `MAX_JSON_DEPTH` levels is refused before it is parsed:
    Python's parser builds nested objects recursively, which a deep enough body
    turns into a RecursionError.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RequestError(400, f"the request body is not UTF-8 (byte {error.start} is 0x{body[error.start]:02x}); "
                           "send binary data as {\"b64\": \"...\"}") from None
    depth = json_depth(body)
    if depth > MAX_JSON_DEPTH:
        raise RequestError(400, f"the request body's JSON nests {depth} levels deep, over the limit of "
                           f"{MAX_JSON_DEPTH} (a tensor's rank and the request's own objects need a few)")
    try:
        request = json.loads(text)
    except ValueError as error:
        raise RequestError(400, f"malformed JSON: {error}") from None
    if not isinstance(request, dict):
        raise RequestError(400, "the request body must be a JSON object with \"instances\" or \"inputs\"")
    unknown = sorted(set(request) - {"signature_name", "instances", "inputs"})
    if unknown:
        raise RequestError(400, f"unknown request field(s) {', '.join(map(repr, unknown))}: a predict request "
                           "has \"signature_name\" and one of \"instances\" or \"inputs\"")
    if ("instances" in request) == ("inputs" in request):
        raise RequestError(400, "a predict request needs exactly one of \"instances\" (row format) or "
                           "\"inputs\" (columnar format)")
    name = request.get("signature_name", DEFAULT_SIGNATURE)
    if not isinstance(name, str):
        raise RequestError(400, "\"signature_name\" must be a string")
    return request


def _strings(name: str, value: Any) -> Any:
    """Nested lists of strings or `{"b64": ...}` objects -> the same of bytes."""
    if isinstance(value, list):
        return [_strings(name, item) for item in value]
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, dict) and set(value) == {"b64"} and isinstance(value["b64"], str):
        try:
            return base64.b64decode(value["b64"], validate=True)
        except (binascii.Error, ValueError):
            raise RequestError(400, f"input {name!r}: {value['b64'][:20]!r}... is not valid base64") from None
    raise RequestError(400, f"input {name!r} takes strings (DT_STRING), not {json.dumps(value)[:40]}")


def _array(name: str, value: Any, spec: tf.TensorSpec) -> np.ndarray:
    """A JSON value as an array of `spec`'s dtype and rank (a `RequestError` naming what is wrong).

    The shape is checked first: NumPy iterates and reduces arrays of at most 32 dimensions.
    """
    ragged = RequestError(400, f"input {name!r}: its rows have different lengths (a tensor is "
                          "rectangular; pad them, or send one at a time)")
    try:
        array = np.array(_strings(name, value), dtype=object) if spec.dtype == tf.string else np.asarray(value)
    except ValueError:
        raise ragged from None
    if not spec.shape.is_compatible_with(array.shape):
        raise RequestError(400, f"input {name!r} has shape {list(array.shape)}; the signature takes "
                           f"{_shape_text(spec.shape)} (-1: any size)")
    if spec.dtype == tf.string:
        if array.size and not all(isinstance(item, bytes) for item in array.flat):
            raise ragged
        return array
    dtype = spec.dtype.as_numpy_dtype
    taken = _NUMBER_KINDS.get(np.dtype(dtype).kind, "")
    if array.size and array.dtype.kind not in taken:
        what = {"U": "strings", "O": "a mix of values", "b": "booleans", "f": "non-integers"}.get(
            array.dtype.kind, array.dtype.name)
        raise RequestError(400, f"input {name!r} takes {spec.dtype.name} numbers, not {what}")
    if np.dtype(dtype).kind in "iu" and array.size:
        limits = np.iinfo(dtype)
        if array.min() < limits.min or array.max() > limits.max:
            raise RequestError(400, f"input {name!r}: a value is out of {spec.dtype.name}'s range")
    return array.astype(dtype)


def _shape_text(shape: tf.TensorShape) -> str:
    if shape.rank is None:
        return "any shape"
    return str([-1 if size is None else size for size in shape.as_list()])


def request_tensors(request: dict[str, Any], specs: dict[str, tf.TensorSpec]) -> tuple[dict[str, np.ndarray], bool]:
    """The signature's inputs from a parsed request, and whether it was in row format."""
    names = sorted(specs)
    row = "instances" in request
    if row:
        instances = request["instances"]
        if not isinstance(instances, list):
            raise RequestError(400, "\"instances\" must be a list (one item per example)")
        if not instances:
            raise RequestError(400, "\"instances\" is empty: send at least one instance")
        scalars = [name for name in names if specs[name].shape.rank == 0]
        if scalars:
            raise RequestError(400, f"input(s) {', '.join(scalars)} are scalars, which the row format cannot "
                               "carry (every input there has the batch dimension): send \"inputs\" instead")
        named = all(isinstance(item, dict) and "b64" not in item for item in instances)
        if len(names) == 1 and not named:
            values = {names[0]: instances}
        elif not named:
            raise RequestError(400, f"this signature takes {len(names)} inputs ({', '.join(names)}), so each "
                               "instance must be an object naming them")
        else:
            for index, item in enumerate(instances):
                _check_names(item, names, f"instance {index}")
            values = {name: [item[name] for item in instances] for name in names}
    else:
        inputs = request["inputs"]
        if isinstance(inputs, dict) and "b64" not in inputs:
            _check_names(inputs, names, "\"inputs\"")
            values = inputs
        elif len(names) == 1:
            values = {names[0]: inputs}
        else:
            raise RequestError(400, f"this signature takes {len(names)} inputs ({', '.join(names)}): "
                               "\"inputs\" must be an object naming them")
    return {name: _array(name, values[name], specs[name]) for name in names}, row


def _check_names(given: dict, names: list[str], where: str) -> None:
    unknown = sorted(set(given) - set(names))
    if unknown:
        raise RequestError(400, f"{where}: unknown input(s) {', '.join(map(repr, unknown))}; the signature "
                           f"takes {', '.join(names)}")
    missing = [name for name in names if name not in given]
    if missing:
        raise RequestError(400, f"{where}: missing input(s) {', '.join(missing)}")


# ----------------------------------------------------------------------------
# Outputs -> response bodies
# ----------------------------------------------------------------------------


def _json_values(name: str, array: np.ndarray) -> Any:
    if array.dtype == object:
        if name.endswith("_bytes"):
            encode = lambda item: {"b64": base64.b64encode(item).decode("ascii")}  # noqa: E731
        else:
            encode = lambda item: item.decode("utf-8", errors="replace")  # noqa: E731
        return np.vectorize(encode, otypes=[object])(array).tolist() if array.size else array.tolist()
    if array.dtype == np.float32:
        # The shortest text that reads back as the same float32 (0.25, not 0.25000000372529).
        return array.astype(str).astype(np.float64).tolist()
    return array.tolist()


def response_body(outputs: dict[str, np.ndarray], row: bool) -> dict[str, Any]:
    """`{"predictions": ...}` (row format) or `{"outputs": ...}` (columnar), as TensorFlow Serving shapes them."""
    names = sorted(outputs)
    values = {name: _json_values(name, outputs[name]) for name in names}
    if not row:
        return {"outputs": values[names[0]] if len(names) == 1 else values}
    sizes = {name: (outputs[name].shape[0] if outputs[name].ndim else None) for name in names}
    if len(set(sizes.values())) != 1 or None in sizes.values():
        raise RequestError(400, "the outputs do not share a batch dimension "
                           f"({', '.join(f'{n}: {s}' for n, s in sizes.items())}): send \"inputs\" instead")
    if len(names) == 1:
        return {"predictions": values[names[0]]}
    return {"predictions": [{name: values[name][index] for name in names} for index in range(sizes[names[0]])]}


# ----------------------------------------------------------------------------
# Status and metadata
# ----------------------------------------------------------------------------


def version_status(served: ServedVersion) -> dict[str, Any]:
    return {"model_version_status": [{
        "version": str(served.version), "state": "AVAILABLE",
        "status": {"error_code": "OK", "error_message": ""},
    }]}


def _tensor_info(name: str, dtype: tf.DType, shape: tf.TensorShape) -> dict[str, Any]:
    if shape.rank is None:
        tensor_shape: dict[str, Any] = {"dim": [], "unknown_rank": True}
    else:
        tensor_shape = {"dim": [{"size": str(-1 if size is None else size), "name": ""}
                                for size in shape.as_list()], "unknown_rank": False}
    return {"dtype": types_pb2.DataType.Name(dtype.as_datatype_enum), "tensor_shape": tensor_shape,
            "name": name}


def signature_def(name: str, function: Any) -> dict[str, Any]:
    inputs = {key: _tensor_info(f"{name}_{key}:0", spec.dtype, spec.shape)
              for key, spec in sorted(signature_inputs(function).items())}
    outputs = {key: _tensor_info(f"StatefulPartitionedCall:{index}", tensor.dtype, tensor.shape)
               for index, (key, tensor) in enumerate(sorted(function.structured_outputs.items()))}
    return {"inputs": inputs, "outputs": outputs, "method_name": PREDICT_METHOD}


def model_metadata(served: ServedVersion) -> dict[str, Any]:
    return {
        "model_spec": {"name": served.model, "signature_name": "", "version": str(served.version)},
        "metadata": {"signature_def": {
            "signature_def": {name: signature_def(name, fn) for name, fn in sorted(served.signatures.items())},
        }},
    }


# ----------------------------------------------------------------------------
# The routes
# ----------------------------------------------------------------------------


def _version_number(text: str | None) -> int | None:
    if text is None:
        return None
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(MAX_VERSION)) or int(text) > MAX_VERSION:
        raise RequestError(400, f"the version must be a whole number up to {MAX_VERSION}, not {text[:40]!r}")
    return int(text)


def predict(served: ServedVersion, request: dict[str, Any], repository: ModelRepository) -> dict[str, Any]:
    """Runs one parsed predict request (in a worker thread)."""
    signature_name = request.get("signature_name", DEFAULT_SIGNATURE)
    signatures = served.signatures
    if signature_name not in signatures:
        raise RequestError(404, f"signature {signature_name!r} not found in {served.model} version "
                           f"{served.version} (it has {', '.join(sorted(signatures))})")
    function = signatures[signature_name]
    tensors, row = request_tensors(request, signature_inputs(function))
    with repository.call():
        try:
            outputs = function(**{name: tf.constant(value) for name, value in tensors.items()})
        except (tf.errors.InvalidArgumentError, ValueError) as error:
            raise RequestError(400, f"the model refused the input: {first_line(error)}") from None
    return response_body({name: value.numpy() for name, value in outputs.items()}, row)


async def _read_limited(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise RequestError(413, f"the request body is {int(declared)} bytes, over the limit of {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestError(413, f"the request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def add_rest_api(app: FastAPI, repository: ModelRepository, max_body_bytes: int) -> None:
    """Adds TensorFlow Serving's routes (and `{"error"}` for every other `/v1/` path) to `app`."""

    def served_version(model: str, version: str | None) -> ServedVersion:
        try:
            return repository.get(model, _version_number(version))
        except NotFound as error:
            raise RequestError(404, str(error)) from None

    async def answer(work) -> Response:
        try:
            return JSONWithNaN(await work())
        except RequestError as error:
            return error_response(error.status, str(error))
        except Exception as error:  # the server's failure, not the caller's
            return error_response(500, f"internal error: {type(error).__name__}: {first_line(error)}")

    async def status(model: str, version: str | None = None) -> Response:
        async def work():
            return version_status(served_version(model, version))
        return await answer(work)

    async def metadata(model: str, version: str | None = None) -> Response:
        async def work():
            served = served_version(model, version)
            return await anyio.to_thread.run_sync(model_metadata, served)
        return await answer(work)

    async def predict_route(request: Request, model: str, version: str | None = None) -> Response:
        async def work():
            served = served_version(model, version)
            parsed = parse_body(await _read_limited(request, max_body_bytes))
            return await anyio.to_thread.run_sync(predict, served, parsed, repository)
        return await answer(work)

    async def unknown_route(path: str) -> Response:
        return error_response(404, f"no such endpoint /v1/{path}: the API has /v1/models/MODEL"
                              "[/versions/N][/metadata] and /v1/models/MODEL[/versions/N]:predict")

    async def http_error(request: Request, error: StarletteHTTPException) -> Response:
        # Starlette's own answers (a method a route does not take) in the API's {"error"} form.
        response = error_response(error.status_code, f"{request.method} {request.url.path}: {error.detail}")
        response.headers.update(error.headers or {})
        return response

    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_api_route("/v1/models/{model}:predict", predict_route, methods=["POST"])
    app.add_api_route("/v1/models/{model}/versions/{version}:predict", predict_route, methods=["POST"])
    app.add_api_route("/v1/models/{model}/metadata", metadata, methods=["GET"])
    app.add_api_route("/v1/models/{model}/versions/{version}/metadata", metadata, methods=["GET"])
    app.add_api_route("/v1/models/{model}", status, methods=["GET"])
    app.add_api_route("/v1/models/{model}/versions/{version}", status, methods=["GET"])
    app.add_api_route("/v1/{path:path}", unknown_route, methods=["GET", "POST", "PUT", "DELETE", "PATCH"])

