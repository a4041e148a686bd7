"""Writing figures: every PNG the suite makes goes through `save_figure`."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from matplotlib.figure import Figure


def new_figure(width: float, height: float) -> Figure:
    """A Matplotlib figure outside pyplot: no global state, no display needed."""
    return Figure(figsize=(width, height))


def save_figure(figure: Figure, path: Path | str, dpi: int = 120) -> Path:
    """Writes `figure` as a PNG at `path`, atomically: a reader never sees half a file.

    The PNG is written beside `path` under a temporary name and renamed over
    it; on any failure the temporary file is removed and `path` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(prefix=".partial-", suffix=".png", dir=path.parent)
    os.close(handle)
    try:
        figure.savefig(partial, dpi=dpi, format="png")
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return path
