"""Which export a trace is for: LiteRT (`portable_ops`) or ONNX (`onnx_tracing`).

The recurrences, and preprocessing around them, ask while they are traced
and trace differently for a file: `gru_core.fused` collects LiteRT's outputs
without a TensorArray and writes a placeholder for ONNX's native GRU op.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

_LITERT = contextvars.ContextVar("gru_core_tracing_for_litert", default=False)
_ONNX = contextvars.ContextVar("gru_core_tracing_for_onnx", default=False)


@contextlib.contextmanager
def _tracing(flag: contextvars.ContextVar) -> Iterator[None]:
    token = flag.set(True)
    try:
        yield
    finally:
        flag.reset(token)


def portable_ops() -> contextlib.AbstractContextManager[None]:
    """Inside: the recurrences trace with LiteRT's built-in ops only.

    A TensorArray of `(batch, units)` steps with a dynamic batch becomes a
    `TensorListReserve` that LiteRT lowers only for a static element shape;
    here each step's state is written into a preallocated `(T, batch,
    units)` tensor instead (`tensor_scatter_nd_update`, LiteRT's
    SCATTER_ND-based update), which TensorFlow itself runs slower, so it is
    used only while exporting.
    """
    return _tracing(_LITERT)


def onnx_tracing() -> contextlib.AbstractContextManager[None]:
    """Inside: each recurrence traces as the placeholder `gru_core.onnx.export_onnx` replaces."""
    return _tracing(_ONNX)


def tracing_portable_ops() -> bool:
    """Whether a trace is inside `portable_ops`."""
    return _LITERT.get()


def tracing_for_onnx() -> bool:
    """Whether a trace is inside `onnx_tracing`."""
    return _ONNX.get()


def tracing_for_a_file() -> bool:
    """Whether a trace is for a LiteRT or an ONNX file (preprocessing that neither format
    runs asks this, as the speech features do)."""
    return tracing_portable_ops() or tracing_for_onnx()
