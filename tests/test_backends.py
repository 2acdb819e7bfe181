"""Keras backends: the compiled pass sees training's updates, every public name loads without
TensorFlow, and TensorFlow, JAX (and PyTorch, when installed) log the same values for the same
weights, each backend in its own process."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from tests import models
from tests.backend_run import probe
from tests.events import read_events
from vizcallbacks.compute.forward import ActivationExtractor
from vizcallbacks.compute.layers import leaf_layers

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ["tensorflow"] + [b for b in ("jax", "torch") if importlib.util.find_spec(b)]


def test_compiled_pass_reads_the_weights_training_left(digits) -> None:
    """After a training step the recorded outputs are those of the updated model, not of the
    weights the pass was compiled with (a jitted closure would keep those as constants)."""
    x, y = digits
    model = models.compiled(models.functional())
    extract = ActivationExtractor(model, leaf_layers(model))
    before = extract(x[:4])["probs"]
    model.fit(x[:64], y[:64], epochs=1, batch_size=32, verbose=0)
    after = extract(x[:4])["probs"]
    expected = keras.ops.convert_to_numpy(model(x[:4], training=False))
    np.testing.assert_allclose(after, expected, rtol=1e-5, atol=1e-6)
    assert np.abs(after - before).max() > 1e-3


def _env(backend: str) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": path}


@pytest.mark.parametrize("backend", BACKENDS[1:])
def test_other_backends_load_no_tensorflow(backend: str) -> None:
    """Every public name (loggers, writers, functions) loads without TensorFlow, and a lone
    process is the one that logs."""
    code = (
        "import sys, vizcallbacks as vc\n"
        "for name in vc.__all__: getattr(vc, name)\n"
        "from vizcallbacks.callbacks.base import is_chief\n"
        "print(is_chief(), 'tensorflow' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=_env(backend), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["True", "False"]


def _run(backend: str, weights: Path, out: Path) -> subprocess.Popen:
    out.mkdir()
    env = _env(backend)
    return subprocess.Popen(
        [sys.executable, "-m", "tests.backend_run", str(weights), str(out)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.skipif(len(BACKENDS) < 2, reason="only TensorFlow is installed")
def test_backends_log_the_same_values(tmp_path: Path) -> None:
    """Weights trained here, loaded into one process per backend: activations, Grad-CAM and
    attribution maps, the loss's gradients per weight (within 1e-5) and the logged statistics
    agree within float32 tolerance; only TensorFlow imports TensorFlow."""
    x, y = probe()
    model = models.compiled(models.functional())
    model.fit(x, y, epochs=2, batch_size=16, verbose=0)  # BatchNorm statistics move too
    weights = tmp_path / "model.weights.h5"
    model.save_weights(weights)
    procs = {b: _run(b, weights, tmp_path / b) for b in BACKENDS}
    for backend, proc in procs.items():
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"{backend}: {err[-3000:]}"
    arrays = {b: dict(np.load(tmp_path / b / "arrays.npz")) for b in BACKENDS}
    events = {b: read_events(tmp_path / b / "logs") for b in BACKENDS}
    reference = arrays["tensorflow"]
    for backend in BACKENDS[1:]:
        assert not arrays[backend].pop("tensorflow_imported"), backend
        assert set(arrays[backend]) == set(reference) - {"tensorflow_imported"}
        for key, value in arrays[backend].items():
            np.testing.assert_allclose(value, reference[key], rtol=1e-4, atol=1e-5, err_msg=key)
        gradients = [key for key in reference if key.startswith("gradients/")]
        assert len(gradients) == 8  # conv_a, bn_a, conv_b, probs: two weights each
        for key in gradients:  # the loss's gradients: within 1e-5
            np.testing.assert_allclose(arrays[backend][key], reference[key], rtol=0, atol=1e-5)
        scalars = {t for t in events["tensorflow"] if t.startswith("activation_")}
        assert scalars and set(events[backend]) == set(events["tensorflow"])
        for tag in scalars:
            np.testing.assert_allclose(
                events[backend][tag][0],
                events["tensorflow"][tag][0],
                rtol=1e-4,
                atol=1e-6,
                err_msg=tag,
            )
