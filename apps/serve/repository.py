"""The models `gru-suite serve` serves: the newest complete version of each model folder.

A models folder holds one folder per model, and numbered versions inside it
(`saved_models/<model>/<version>/`), as TensorFlow Serving reads them. As its
default version policy does, the newest version is served; a version that
appears later is loaded by `refresh` (which the server calls every few
seconds) while the previous one keeps answering, and replaces it only once it
has loaded. Folders being written (`.partial-*`, see `apps.common.export`)
are not versions, and a version is only considered once its `saved_model.pb`
exists.
"""

from __future__ import annotations

import dataclasses
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from apps.common.app import Export
from apps.common.errors import InputError, first_line
from apps.common.export import existing_versions, load_exported, read_metadata


class NotFound(LookupError):
    """No such model or version is being served (TensorFlow Serving's wording in `str`)."""


@dataclasses.dataclass(frozen=True)
class ServedVersion:
    """One loaded version of a model."""

    model: str
    version: int
    path: Path
    loaded: Any  # the loaded SavedModel, which owns the signatures' variables
    metadata: dict[str, Any]

    @property
    def app(self) -> str | None:
        return self.metadata.get("app")

    @property
    def signatures(self) -> dict[str, Any]:
        return dict(self.loaded.signatures)

    def export(self) -> Export:
        return Export(self.signatures, self.metadata, self.path, keep_alive=self.loaded)


def _complete_versions(model_dir: Path) -> list[int]:
    return [v for v in existing_versions(model_dir) if (model_dir / str(v) / "saved_model.pb").is_file()]


class ModelRepository:
    """The served versions of the models under `root`, refreshed from disk.

    Args:
        root: The models folder.
        apps: Serve only exports made by these apps (None: every model).
        max_concurrent_calls: How many model calls run at once (the REST
            API's and the demo page's together); further calls wait.
    """

    def __init__(self, root: Path | str, apps: tuple[str, ...] | None = None, max_concurrent_calls: int = 2):
        self.root = Path(root)
        self.apps = apps
        self.calls = threading.BoundedSemaphore(max_concurrent_calls)
        self._served: dict[str, ServedVersion] = {}
        self._failed: dict[tuple[str, int], str] = {}
        self._lock = threading.Lock()
        self._refreshing = threading.Lock()

    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._served)

    def get(self, model: str, version: int | None = None) -> ServedVersion:
        """The served version of `model` (the newest, or `version`, which must be the one served)."""
        with self._lock:
            served = self._served.get(model)
        if served is None or (version is not None and served.version != version):
            request = f"Latest({model})" if version is None else f"Specific({model}, {version})"
            raise NotFound(f"Servable not found for request: {request}")
        return served

    @contextmanager
    def call(self) -> Iterator[None]:
        """Holds one of the `max_concurrent_calls` slots while a model runs."""
        with self.calls:
            yield

    def refresh(self) -> list[str]:
        """Loads every model's newest complete version not yet served; returns what changed.

        A version that fails to load is reported once and skipped (the
        previous one keeps being served) until a newer one appears.
        """
        changes = []
        with self._refreshing:
            model_dirs = sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith(".")) \
                if self.root.is_dir() else []
            present = {p.name for p in model_dirs}
            for model_dir in model_dirs:
                change = self._refresh_model(model_dir)
                if change:
                    changes.append(change)
            with self._lock:
                for gone in sorted(set(self._served) - present):
                    del self._served[gone]
                    changes.append(f"{gone}: its folder is gone; no longer served")
        return changes

    def _refresh_model(self, model_dir: Path) -> str | None:
        name = model_dir.name
        versions = _complete_versions(model_dir)
        if not versions:
            return None
        newest = versions[-1]
        with self._lock:
            current = self._served.get(name)
        if (current is not None and current.version == newest) or (name, newest) in self._failed:
            return None
        version_dir = model_dir / str(newest)
        try:
            metadata = read_metadata(version_dir)
            app = metadata.get("app", name)
            if self.apps is not None and app not in self.apps:
                return None
            loaded = load_exported(version_dir)
        except (InputError, OSError, ValueError, RuntimeError) as error:
            message = first_line(error)
            self._failed[(name, newest)] = message
            print(f"serve: {version_dir}: not loaded ({message})", file=sys.stderr)
            return None
        served = ServedVersion(name, newest, version_dir, loaded, {"app": app, **metadata})
        with self._lock:
            self._served[name] = served
        before = f" (was version {current.version})" if current is not None else ""
        return f"{name}: serving version {newest}{before}"

    def poll(self, every_seconds: float, stop: threading.Event) -> None:
        """Calls `refresh` every `every_seconds` until `stop` is set (a background thread's loop)."""
        while not stop.wait(every_seconds):
            for change in self.refresh():
                print(f"serve: {change}", file=sys.stderr, flush=True)
