"""`gru-suite train APP --backend jax`: the fit runs in a JAX process, the export is TensorFlow's.

Needs JAX (`pip install -e '.[jax]'`); `.ci/run` installs it after the main
suite and runs this file then.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

pytest.importorskip("jax")

from apps.common.running import load_export, registered_app, train_app  # noqa: E402
from apps.registry import load_app_packages  # noqa: E402
from apps.sentiment.data import load_data  # noqa: E402
from apps.sentiment.model import predict_texts  # noqa: E402

load_app_packages()
# Long enough that both fits get past the sample's plateau at chance (about 5 epochs).
SETTINGS = ["--epochs", "8", "--units", "16", "--embedding-dim", "16", "--max-length", "16",
            "--batch-size", "64", "--verbose", "0", "--no-log"]
BACKENDS = ("tensorflow", "jax")


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> dict:
    """backend -> (training report, its run folder), both from seed 0."""
    root = tmp_path_factory.mktemp("backends")
    return {
        backend: (
            train_app("sentiment", [*SETTINGS, "--backend", backend, "--export-dir", str(root / backend),
                                    "--run-dir", str(root / "runs" / backend)]),
            root / "runs" / backend,
        )
        for backend in BACKENDS
    }


def _held_out_probabilities(report) -> np.ndarray:
    export = load_export(registered_app("sentiment"), Path(report.export_path))
    return predict_texts(export.signature(), load_data("sample").test.texts)


def test_fits_on_jax_and_on_tensorflow_from_one_seed_agree_in_distribution(trained):
    (on_tensorflow, _), (on_jax, _) = trained["tensorflow"], trained["jax"]
    assert "backend" not in on_tensorflow.extra
    assert on_jax.extra["backend"].startswith("fitted on jax in its own process")
    assert len(on_jax.history["loss"]) == 8 and on_jax.history["loss"][-1] < on_jax.history["loss"][0]
    assert on_jax.weights_sha256 != on_tensorflow.weights_sha256  # two fits, not one
    assert min(on_tensorflow.value, on_jax.value) > 0.85, (on_tensorflow.value, on_jax.value)
    assert abs(on_tensorflow.value - on_jax.value) < 0.08
    tensorflow_says = _held_out_probabilities(on_tensorflow)
    jax_says = _held_out_probabilities(on_jax)
    assert np.mean((tensorflow_says >= 0.5) == (jax_says >= 0.5)) > 0.85
    assert abs(np.mean(tensorflow_says) - np.mean(jax_says)) < 0.1


def test_the_export_holds_the_weights_the_jax_process_fitted(trained):
    report, run_dir = trained["jax"]
    fitted = keras.saving.load_model(run_dir / "fitted-on-jax" / "model.keras")
    exported = keras.saving.load_model(Path(report.export_path) / "extra" / "model.keras")
    for mine, theirs in zip(fitted.get_weights(), exported.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, theirs)


def test_the_jax_trained_export_serves_in_a_fresh_tensorflow_process(trained):
    report, _ = trained["jax"]
    texts = ["a moving, funny film", "dull and far too long", ""]
    script = textwrap.dedent(f"""
        import json, sys
        import tensorflow as tf, tensorflow_text  # noqa: F401 (its ops)
        assert not any(name.split(".")[0] in ("apps", "gru_core") for name in sys.modules)
        serve = tf.saved_model.load({report.export_path!r}).signatures["serving_default"]
        answer = serve(text=tf.constant({texts!r}))
        print(json.dumps([float(p) for p in answer["probability"].numpy()]))
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd="/")
    assert result.returncode == 0, result.stderr[-2000:]
    probabilities = json.loads(result.stdout.strip().splitlines()[-1])
    export = load_export(registered_app("sentiment"), Path(report.export_path))
    np.testing.assert_allclose(probabilities, predict_texts(export.signature(), texts), atol=1e-6)
