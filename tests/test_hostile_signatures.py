"""Property-based tests of every signature of every export, called in-process as a client would
(`tf.saved_model.load`), with tensors Hypothesis draws within each input's dtype: any batch and
length (0 included), NaN, ±inf, huge and tiny numbers, empty, long and invalid-UTF-8 strings, and
now and then the wrong rank or a fixed size off by one.

The properties, for every call:

- it answers with outputs of the signature's declared shapes, one row per input row, or fails with
  an error (`InvalidArgumentError`, `ValueError` or `TypeError`) whose message names an input;
- no output is NaN unless an input was.

The number of calls per signature is the Hypothesis profile's (`tests/conftest.py`): `ci` by
default, `--hypothesis-profile soak` for many more.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorflow as tf
from conftest import SMOKE_VARIANTS
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from apps.common.app import signature_inputs
from apps.registry import REGISTRY, load_app_packages

load_app_packages()
NAN = float("nan")
SPECIAL_FLOATS = (NAN, math.inf, -math.inf, 0.0, -0.0, 3.4e38, -3.4e38, 1e-45, 1e30)
# Sizes of a dimension the signature leaves open: short, the sizes of audio steps and chunks, long.
OPEN_SIZES = st.one_of(st.integers(0, 40), st.sampled_from([160, 320, 1600, 3200, 16000]), st.integers(0, 24000))


@pytest.fixture(scope="module")
def exports(smoke_exports, smoke_variants) -> dict[str, Path]:
    """Export name -> version folder: every app's tiny export and the `SMOKE_VARIANTS`."""
    return {name: smoke.path for name, smoke in {**smoke_exports, **smoke_variants}.items()}


def _floats() -> st.SearchStrategy[float]:
    return st.one_of(st.floats(width=32), st.sampled_from(SPECIAL_FLOATS))


def _fill() -> st.SearchStrategy[float]:
    """What most of an array holds: ordinary audio samples or prices."""
    return st.one_of(st.floats(-1, 1, width=32), st.floats(0.25, 1000, width=32))


def _strings() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.text(max_size=30).map(lambda text: text.encode("utf-8")),
        st.binary(max_size=30),  # mostly not UTF-8
        st.text(min_size=200, max_size=3000).map(lambda text: text.encode("utf-8")),
    )


def _integers() -> st.SearchStrategy[int]:
    return st.one_of(st.integers(-3, 8), st.integers(-2**31, 2**31 - 1))


@st.composite
def _tensor(draw, spec: tf.TensorSpec, batch: int) -> np.ndarray:
    """An array of `spec`'s dtype: its shape, the batch `batch`, open sizes drawn; now and then a
    fixed size off by one or a dimension too many."""
    shape = [batch if index == 0 and size is None else size for index, size in enumerate(spec.shape.as_list())]
    shape = [draw(OPEN_SIZES) if size is None else size for size in shape]
    if draw(st.integers(0, 9)) == 0:
        fixed = [index for index, size in enumerate(spec.shape.as_list()) if size is not None]
        if fixed:
            shape[draw(st.sampled_from(fixed))] += draw(st.sampled_from([-1, 1]))
        else:
            shape.append(draw(st.integers(0, 2)))
    if spec.dtype == tf.string:
        size = int(np.prod(shape))
        return np.array(draw(st.lists(_strings(), min_size=size, max_size=size)), dtype=object).reshape(shape)
    if spec.dtype.is_floating:
        return draw(hnp.arrays(np.float32, shape, elements=_floats(), fill=_fill()))
    limits = np.iinfo(spec.dtype.as_numpy_dtype)
    elements = _integers().filter(lambda value: limits.min <= value <= limits.max)
    return draw(hnp.arrays(spec.dtype.as_numpy_dtype, shape, elements=elements, fill=st.integers(-1, 8)))


@st.composite
def _inputs(draw, specs: dict[str, tf.TensorSpec]) -> dict[str, np.ndarray]:
    """Every input of a signature; they share one batch size, now and then not."""
    batch = draw(st.integers(0, 3))
    return {name: draw(_tensor(spec, draw(st.integers(0, 3)) if draw(st.integers(0, 9)) == 0 else batch))
            for name, spec in sorted(specs.items())}


def _has_nan(inputs: dict[str, np.ndarray]) -> bool:
    return any(value.dtype.kind == "f" and np.isnan(value).any() for value in inputs.values())


def check_call(signature: Any, inputs: dict[str, np.ndarray]) -> None:
    """The properties of one call (see the module's docstring)."""
    try:
        outputs = signature(**{name: tf.constant(value) for name, value in inputs.items()})
    except (tf.errors.InvalidArgumentError, ValueError, TypeError) as error:
        message = str(error)
        assert any(name in message for name in inputs), f"the error names no input: {message[:2000]}"
        return
    batches = {len(value) for value in inputs.values() if value.ndim}
    for name, tensor in outputs.items():
        declared = signature.structured_outputs[name]
        assert declared.shape.is_compatible_with(tensor.shape), (name, declared.shape, tensor.shape)
        if tensor.shape.rank and declared.shape[0] is None and len(batches) == 1:
            assert tensor.shape[0] == next(iter(batches)), (name, tensor.shape, batches)
        if tensor.dtype.is_floating and not _has_nan(inputs):
            assert not np.isnan(tensor.numpy()).any(), f"{name} is NaN for inputs without NaN"


@pytest.mark.parametrize("export", [*REGISTRY.apps(), *SMOKE_VARIANTS])
def test_every_signature_answers_in_shape_or_names_the_input(exports, export):
    loaded = tf.saved_model.load(str(exports[export]))
    for name, function in sorted(loaded.signatures.items()):
        @given(_inputs(signature_inputs(function)))
        def calls(inputs):
            check_call(function, inputs)

        try:
            calls()
        except BaseException as error:
            error.add_note(f"signature {name!r} of the {export} export")
            raise
