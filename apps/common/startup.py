"""A quiet TensorFlow start for the command line.

Importing TensorFlow prints C++ log lines before its logging is set up (so
`TF_CPP_MIN_LOG_LEVEL` cannot hide them): CPU-instruction and oneDNN notes,
"Could not find cuda drivers", and on every machine without a GPU an
`E0000 ... failed call to cuInit` line that reads like a failure. The
import and the device probe that logs cuInit run with the process's stderr
captured; what was captured is printed again without those known start-up
lines, so any other message still shows. Later C++ log lines are hidden
(`TF_CPP_MIN_LOG_LEVEL=3`, unless set already): at run time TensorFlow logs
notes such as oneDNN's "supports DT_BOOL only on platforms with AVX-512" at
error level, while a real failure raises a Python exception whose message
the CLI prints.

This module imports no TensorFlow itself: the CLI calls it first.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile

STARTUP_NOISE = re.compile(
    r"^(?:[IW]\d{4} "  # absl INFO / WARNING lines
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called"
    r"|To enable the following instructions:.* rebuild TensorFlow"
    r"|E\d{4} .*failed call to cuInit)"
)


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow and probes its devices, dropping the start-up lines (see module doc)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        kept = [
            line for line in captured.read().decode("utf-8", "replace").splitlines()
            if line.strip() and not STARTUP_NOISE.match(line)
        ]
    if kept:
        print("\n".join(kept), file=sys.stderr)
