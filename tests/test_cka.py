"""Representation similarity: CKA's properties to 1e-6, a planted copy found in the logged
matrix, a real fit read back from TensorBoard, and the same matrices on every backend."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

import vizcallbacks as vc
from tests import models
from tests.events import read_events
from vizcallbacks.compute.cka import cka_from_grams, cross_cka, pool_spatial
from vizcallbacks.compute.layers import leaf_layers
from vizcallbacks.compute.representations import LayerGrams
from vizcallbacks.views.representations import read_gram_archive

ROOT = Path(__file__).resolve().parent.parent
BACKENDS = ["tensorflow"] + [b for b in ("jax", "torch") if importlib.util.find_spec(b)]
RNG = np.random.default_rng(26)
X = RNG.normal(size=(40, 30))


# Properties --------------------------------------------------------------------------------
def _orthogonal(d: int) -> np.ndarray:
    q, _ = np.linalg.qr(RNG.normal(size=(d, d)))
    return q


@pytest.mark.parametrize("debiased", [False, True])
def test_cka_is_one_under_rotation_and_scaling_and_symmetric(debiased: bool) -> None:
    y = X @ RNG.normal(size=(30, 12)) + RNG.normal(size=(40, 12))
    assert abs(vc.cka(X, X @ _orthogonal(30), debiased=debiased) - 1.0) < 1e-6
    assert abs(vc.cka(X, 3.7 * X, debiased=debiased) - 1.0) < 1e-6
    assert abs(vc.cka(X, y, debiased=debiased) - vc.cka(y, X, debiased=debiased)) < 1e-12
    assert 0.0 < vc.cka(X, y, debiased=debiased) < 1.0 - 1e-3


def test_cka_is_below_one_under_an_invertible_map_that_is_not_orthogonal() -> None:
    a = np.eye(30) + np.diag(np.linspace(0.0, 4.0, 30))  # invertible, stretches some axes
    assert np.linalg.matrix_rank(a) == 30
    assert vc.cka(X, X @ a) < 1.0 - 1e-3


def _unbiased_hsic(k: np.ndarray, l: np.ndarray) -> float:  # noqa: E741
    """Song et al. (2012), eq. 5, as written: K̃, L̃ are K, L with their diagonals zeroed."""
    n = k.shape[0]
    kt, lt = k - np.diag(np.diag(k)), l - np.diag(np.diag(l))
    ones = np.ones(n)
    trace = np.trace(kt @ lt)
    both = (ones @ kt @ ones) * (ones @ lt @ ones) / ((n - 1) * (n - 2))
    cross = 2.0 / (n - 2) * (ones @ kt @ lt @ ones)
    return float((trace + both - cross) / (n * (n - 3)))


def test_debiased_cka_is_the_unbiased_hsic_of_song_et_al() -> None:
    y = np.maximum(X[:, :10] + 0.5 * RNG.normal(size=(40, 10)), 0.0)
    k, l = X @ X.T, y @ y.T  # noqa: E741
    expected = _unbiased_hsic(k, l) / np.sqrt(_unbiased_hsic(k, k) * _unbiased_hsic(l, l))
    assert abs(vc.cka(X, y, debiased=True) - expected) < 1e-6
    assert abs(vc.cka(X, y, debiased=True) - vc.cka(X, y)) > 1e-3  # a different estimator


def test_cka_refuses_different_examples_and_is_nan_for_a_constant_layer() -> None:
    with pytest.raises(ValueError, match="same examples"):
        vc.cka(X, X[:20])
    with pytest.raises(ValueError, match="n ≥ 4"):
        vc.cka(X[:3], X[:3], debiased=True)
    assert np.isnan(vc.cka(X, np.ones((40, 5))))


def _centred_gram(values: np.ndarray) -> np.ndarray:
    """H X Xᵀ H in float64, H = I - 11ᵀ/n: the reference the float32 product is held to."""
    x = values.reshape(len(values), -1).astype(np.float64)
    h = np.eye(len(x)) - 1.0 / len(x)
    return h @ (x @ x.T) @ h


def test_batch_by_batch_gram_equals_the_one_shot_gram(digits) -> None:
    """Gram matrices from the recorded pass in batches of 24 (the last one short) equal the
    float64 centred Grams of every layer's whole output at once (to 1e-6 of the largest entry:
    the product runs in float32); a pooled layer's too, its features pooled first."""
    x, _ = digits
    model = models.functional()
    refs = leaf_layers(model)
    whole = vc.layer_activations(model, x[:100])
    grams = LayerGrams(model, batch_size=24)(x[:100])
    assert grams.reduced == () and set(grams.layers) == set(whole)
    for name, k in zip(grams.layers, grams.grams, strict=True):
        expected = _centred_gram(whole[name])
        scale = np.abs(expected).max()
        np.testing.assert_allclose(k, expected, rtol=0, atol=1e-6 * scale, err_msg=name)
    small = LayerGrams(model, batch_size=24, max_layer_bytes=100 * 16 * 16 * 4 - 1)(x[:100])
    conv = refs[0].name
    assert conv in small.reduced
    pooled = pool_spatial(whole[conv])
    assert pooled.shape[1:3] == (8, 8)
    expected = _centred_gram(pooled)
    k = small.grams[small.layers.index(conv)]
    np.testing.assert_allclose(k, expected, rtol=0, atol=1e-6 * np.abs(expected).max())


def test_logged_cka_equals_the_float64_cka_of_whole_outputs(digits) -> None:
    """The logger's path (float32 products of centred features, batch by batch) gives every
    layer pair the CKA that vc.cka computes in float64 from whole outputs, for both
    estimators: U-centring, like centring, ignores the features' mean over the examples."""
    x, _ = digits
    model = models.functional()
    whole = vc.layer_activations(model, x[:100])
    grams = LayerGrams(model, batch_size=24)(x[:100])
    for debiased in (False, True):
        units = grams.units(debiased)
        matrix = cross_cka(units, units)
        expected = [
            [vc.cka(whole[a], whole[b], debiased) for b in grams.layers] for a in grams.layers
        ]
        np.testing.assert_allclose(matrix, expected, rtol=0, atol=1e-6, err_msg=f"{debiased=}")


def test_pooling_to_8x8_averages_near_equal_bins() -> None:
    values = np.arange(2 * 10 * 10 * 3, dtype=np.float32).reshape(2, 10, 10, 3)
    pooled = pool_spatial(values)
    assert pooled.shape == (2, 8, 8, 3)
    np.testing.assert_allclose(pooled.mean(axis=(1, 2)), values.mean(axis=(1, 2)), rtol=0.05)
    np.testing.assert_allclose(pooled[0, 0, 0], values[0, :1, :1].mean(axis=(0, 1)))
    np.testing.assert_allclose(pool_spatial(values[:, :8, :8]), values[:, :8, :8])


# The planted copy -------------------------------------------------------------------------
def planted(seed: int = 0) -> keras.Model:
    """conv_a → conv_b → mix: ``mix`` is conv_b's output through a frozen orthogonal 1x1
    convolution (no bias, no activation), so CKA(conv_b, mix) = 1 at every step."""
    inputs = keras.Input((16, 16, 1))
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv_a")(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="conv_b")(x)
    mix = keras.layers.Conv2D(8, 1, use_bias=False, trainable=False, name="mix")
    x = keras.layers.GlobalAveragePooling2D(name="gap")(mix(x))
    outputs = keras.layers.Dense(10, activation="softmax", name="probs")(x)
    model = keras.Model(inputs, outputs)
    q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(8, 8)))
    mix.set_weights([q.astype(np.float32)[None, None]])
    return models.compiled(model)


def test_planted_copy_has_cka_one_in_the_logged_matrix(tmp_path: Path, digits) -> None:
    x, y = digits
    model = planted()
    logger = vc.RepresentationLogger(x[:64], [vc.TensorBoardWriter(tmp_path)])
    model.fit(x, y, epochs=2, batch_size=32, verbose=0, callbacks=[logger])
    archive = read_gram_archive(tmp_path / "files" / "cka" / "grams_step_000002.npz")
    assert archive.step == 2 and archive.grams.shape == (len(archive.layers), 64, 64)
    b, m = archive.grams[archive.layers.index("conv_b")], archive.grams[archive.layers.index("mix")]
    assert abs(cka_from_grams(b, m) - 1.0) < 1e-6
    a = archive.grams[archive.layers.index("conv_a")]
    assert cka_from_grams(a, b) < 0.999  # a different layer is not a copy
    events = read_events(tmp_path)
    for step in (0, 1, 2):  # the copy keeps pace with its source at every step
        drift_b = events["cka_to_initial/conv_b"][step]
        assert abs(events["cka_to_initial/mix"][step] - drift_b) < 1e-5
    matrix, rows, cols = vc.cka_matrix(model, x[:64])
    assert rows == cols == list(archive.layers)
    assert abs(matrix[rows.index("conv_b"), rows.index("mix")] - 1.0) < 1e-6
    np.testing.assert_allclose(np.diag(matrix), 1.0, atol=1e-6)


# A real fit, read back -------------------------------------------------------------------
def test_fit_logs_the_layer_matrix_drift_and_convergence(tmp_path: Path, digits) -> None:
    x, y = digits
    model = models.compiled(models.functional())
    names = [r.name for r in leaf_layers(model)]
    logger = vc.RepresentationLogger(
        x[:32], [vc.TensorBoardWriter(tmp_path)], gram_steps=[1], max_layer_bytes=16_000
    )
    model.fit(x, y, epochs=3, batch_size=32, verbose=0, callbacks=[logger])
    events = read_events(tmp_path)
    assert set(events["cka/layers"]) == {0, 1, 2, 3}
    assert set(events["cka/convergence"]) == {3}
    picture = events["cka/layers"][3]
    assert picture.ndim == 3 and picture.shape[0] > 100 and picture.shape[1] > 100
    for name in names:
        assert set(events[f"cka_to_initial/{name}"]) == {0, 1, 2, 3}
        assert set(events[f"cka_to_previous/{name}"]) == {1, 2, 3}
        assert abs(events[f"cka_to_initial/{name}"][0] - 1.0) < 1e-6
    trained = min(events[f"cka_to_initial/{name}"][3] for name in names)
    assert trained < 1.0 - 1e-4  # training moved the representations (some backends' first conv
    # barely moves in 3 epochs of 8 batches: PyTorch's stays within 1e-5 of its start)
    params = events["vizcallbacks/params"][0].item().decode()
    assert "layers_reduced" in params and names[0] in params.split("layers_reduced")[1]
    files = sorted(p.name for p in (tmp_path / "files" / "cka").iterdir())
    assert files == ["grams_step_000001.npz", "grams_step_000003.npz"]
    final = read_gram_archive(tmp_path / "files" / "cka" / "grams_step_000003.npz")
    assert final.reduced == tuple(names[:3]) and final.probe_hash == logger.probe_hash
    steps, convergence = logger.convergence()  # what the train-end picture draws
    assert steps == [0, 1, 2, 3] and convergence.shape == (len(names), 4)
    np.testing.assert_allclose(convergence[:, -1], 1.0, atol=2e-3)  # the last step with itself
    first = [events[f"cka_to_initial/{name}"][3] for name in names]  # the same pair, float64
    np.testing.assert_allclose(convergence[:, 0], first, atol=2e-3)


def test_logger_refuses_a_small_probe_set_and_bad_options(tmp_path: Path, digits) -> None:
    x, _ = digits
    writers = [vc.TensorBoardWriter(tmp_path)]
    with pytest.raises(ValueError, match="at least 16"):
        vc.RepresentationLogger(x[:8], writers)
    with pytest.raises(ValueError, match="gram_steps"):
        vc.RepresentationLogger(x[:16], writers, gram_steps=[-1])
    with pytest.raises(TypeError, match="debiased"):
        vc.RepresentationLogger(x[:16], writers, debiased="yes")  # type: ignore[arg-type]


# Backends ---------------------------------------------------------------------------------
def _env(backend: str) -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "KERAS_BACKEND": backend, "PYTHONPATH": path}


@pytest.mark.skipif(len(BACKENDS) < 2, reason="only TensorFlow is installed")
def test_backends_log_the_same_matrices(tmp_path: Path, digits) -> None:
    """Weights trained here, loaded into one process per backend: the logged Gram matrices
    give the same CKA matrices within 1e-5, and the same drift scalars."""
    x, y = digits
    model = models.compiled(models.functional())
    model.fit(x, y, epochs=2, batch_size=32, verbose=0)
    weights = tmp_path / "model.weights.h5"
    model.save_weights(weights)
    procs = {}
    for backend in BACKENDS:
        (tmp_path / backend).mkdir()
        procs[backend] = subprocess.Popen(
            [sys.executable, "-m", "tests.cka_backend_run", str(weights), str(tmp_path / backend)],
            cwd=ROOT,
            env=_env(backend),
            stderr=subprocess.PIPE,
            text=True,
        )
    for backend, proc in procs.items():
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, f"{backend}: {err[-3000:]}"
    matrices = {}
    for backend in BACKENDS:
        archive = read_gram_archive(tmp_path / backend / "files" / "cka" / "grams_step_000000.npz")
        matrices[backend] = np.array(
            [[cka_from_grams(k, l) for l in archive.grams] for k in archive.grams]  # noqa: E741
        )
    for backend in BACKENDS[1:]:
        np.testing.assert_allclose(matrices[backend], matrices["tensorflow"], atol=1e-5)


# Across runs -------------------------------------------------------------------------------
def test_compare_cka_draws_lenet5_valid_against_same_and_refuses_other_probes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Two short real runs of experiments.lenet5 (valid and same padding, the same 32 test
    images): one picture of valid's layers x same's; a run over 24 images is refused."""
    from experiments import lenet5
    from vizcallbacks.__main__ import USAGE, main

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    short = ["--epochs", "1", "--max-samples", "64", "--no-mlflow", "--cka-probes"]
    for padding, probes in (("valid", "32"), ("same", "32"), ("other", "24")):
        chosen = "same" if padding == "other" else padding
        log_dir = str(tmp_path / padding)
        lenet5.main([*short, probes, "--padding", chosen, "--log-dir", log_dir])
    capsys.readouterr()
    output = tmp_path / "valid_vs_same.png"
    runs = [str(tmp_path / "valid"), str(tmp_path / "same")]
    assert main(["compare", *runs, "--cka", "--output", str(output)]) == 0
    printed = capsys.readouterr().out
    assert "conv1: closest" in printed and "probs: closest" in printed
    from PIL import Image

    picture = np.asarray(Image.open(output))
    assert picture.ndim == 3 and picture.shape[0] > 300 and picture.shape[1] > 300
    from vizcallbacks.cka_compare import compare_cka, load_archive

    (_, a), (_, b) = load_archive(runs[0]), load_archive(runs[1])
    result = compare_cka(a, b, ("valid", "same"))
    names = list(lenet5.build_model().layers)
    assert result.matrix.shape == (len(names), len(names))
    assert np.all(result.matrix[np.isfinite(result.matrix)] <= 1.0)
    assert result.matrix[0, 0] > 0.5  # conv1 of both sees the same 32 images alike

    other = str(tmp_path / "other")
    assert main(["compare", runs[0], other, "--cka", "--output", str(output)]) == USAGE
    refusal = capsys.readouterr().err
    assert "different probe sets" in refusal and "32 examples" in refusal
    assert "24 examples" in refusal
