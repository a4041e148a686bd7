"""Files and folders published for other users: written whole, with the umask's permissions.

`tempfile.mkstemp` and `mkdtemp` make files 0600 and folders 0700 whatever
the umask, and a rename into place keeps that mode: a model server running
as another user could not read an export. The helpers here write under a
temporary name, give the result the mode a plain `open` or `mkdir` would
(0644 and 0755 under the usual umask 022), and only then rename it into
place, so a reader never sees half a file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

PARTIAL_PREFIX = ".partial-"


def current_umask() -> int:
    """The process's umask (read by setting it, then setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def publishable_folder(parent: Path, prefix: str = PARTIAL_PREFIX) -> Path:
    """A new, empty temporary folder in `parent` with the mode `mkdir` would give it."""
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=parent))
    folder.chmod(0o777 & ~current_umask())
    return folder


def write_atomically(path: Path | str, write: Callable[[str], None], suffix: str = "") -> Path:
    """Calls `write(temporary_path)` and renames the file it wrote over `path`.

    The file gets the mode `open` would give it. On any failure the temporary
    file is removed and `path` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, partial = tempfile.mkstemp(prefix=PARTIAL_PREFIX, suffix=suffix, dir=path.parent)
    os.close(handle)
    try:
        write(partial)
        os.chmod(partial, 0o666 & ~current_umask())
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return path

