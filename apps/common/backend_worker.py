"""The child process of `gru-suite train APP --backend B` (`apps.common.backend_fit`).

`python -m apps.common.backend_worker APP FOLDER TRAIN-ARGS...`, run with
`KERAS_BACKEND` set: trains APP with those settings up to the end of its fit
and leaves the fitted model in FOLDER.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

from apps.common.errors import InputError


def main(argv: list[str]) -> int:
    # Before anything imports TensorFlow (for tf.data): its start-up lines are noise here.
    from apps.common.startup import import_tensorflow_quietly

    import_tensorflow_quietly()
    # Token ids arrive as int64 and JAX computes in int32 unless told otherwise: ids fit.
    warnings.filterwarnings("ignore", message="Explicitly requested dtype int64", category=UserWarning)
    from apps.common.running import fit_only, registered_app, settings_from
    from apps.registry import load_app_packages

    app_name, folder, *train_arguments = argv
    load_app_packages()
    app = registered_app(app_name)
    try:
        fit_only(app, settings_from(app.Train, train_arguments), Path(folder))
    except InputError as error:
        print(f"gru-suite: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
