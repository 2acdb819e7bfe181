"""Fourier filter patterns, class patterns and diversity: the inverse DFT and the resampling
against numpy, "auto" deciding by the input, logits (not probabilities) ascended by hand, and the
logger's class grids read back from the event files."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
from keras import layers, ops

import vizcallbacks as vc
from tests import handset, models
from tests.events import read_events, tag_steps
from vizcallbacks.compute.pattern_image import FourierImage, affine_map, resample
from vizcallbacks.compute.pattern_options import PatternOptions, resolved_parameterization
from vizcallbacks.compute.patterns import FilterPatterns, _gram_similarity
from vizcallbacks.render.overlay import tile_patterns


@pytest.mark.parametrize("shape, decay_power", [((6, 8, 3), 1.0), ((5, 7, 1), 1.0), ((6, 8, 1), 2)])
def test_fourier_image_is_numpys_orthonormal_irfft2_through_a_sigmoid(shape, decay_power) -> None:
    height, width, channels = shape
    image = FourierImage(shape, (-1.0, 3.0), 0.05, decorrelate=False, decay_power=decay_power)
    params = np.random.default_rng(0).standard_normal((2, 2, channels, height, width // 2 + 1))
    rendered = ops.convert_to_numpy(image.render(ops.convert_to_tensor(params, "float32")))
    spectrum = (params[:, 0] + 1j * params[:, 1]) * image.scale
    pixels = np.fft.irfft2(spectrum, s=(height, width), norm="ortho").transpose(0, 2, 3, 1) / 4
    np.testing.assert_allclose(rendered, -1 + 4 / (1 + np.exp(-pixels)), atol=2e-6)
    # 1/frequency**decay_power: the lowest non-zero frequency 1/max(H, W) (and DC) weigh
    # max(H, W)**decay_power; frequency (0, 2/W) half of that when decay_power is 1.
    assert image.scale[0, 0] == pytest.approx(max(height, width) ** decay_power)
    assert image.scale[0, 1] == pytest.approx(width**decay_power)
    assert image.scale[0, 2] == pytest.approx((width / 2) ** decay_power)


def test_colour_decorrelation_mixes_channels_by_lucids_matrix() -> None:
    image = FourierImage((4, 4, 3), (0.0, 1.0), 0.05, decorrelate=True)
    params = np.zeros((1, 2, 3, 4, 3), np.float32)
    params[0, 0, 0, 0, 0] = 1.0  # DC of the first decorrelated channel: a flat colour
    rgb = ops.convert_to_numpy(image.render(ops.convert_to_tensor(params)))[0, 0, 0]
    mix = np.array([0.26, 0.27, 0.27]) / np.linalg.norm([0.26, 0.27, 0.27])  # column 0, max norm
    # DC: 1 · scale 4 / sqrt(16) = 1, divided by Lucid's 4, mixed, through the sigmoid.
    np.testing.assert_allclose(rgb, 1 / (1 + np.exp(-0.25 * mix)), rtol=1e-5)


def test_resampling_by_an_integer_shift_moves_pixels_and_fills_grey() -> None:
    image = np.random.default_rng(1).random((1, 5, 6, 2)).astype(np.float32)
    moved = resample(
        ops.convert_to_tensor(image), np.float32(affine_map((5, 6), 1, 0, (1, 2))), 0.5
    )
    moved = ops.convert_to_numpy(moved)
    np.testing.assert_allclose(moved[0, 1:, 2:], image[0, :-1, :-2], atol=1e-6)
    assert (moved[0, 0] == 0.5).all() and (moved[0, :, :2] == 0.5).all()
    # Zoom 2x about the centre (2, 2.5): output (2, 1) samples x = 2.5 + (1 - 2.5) / 2 = 1.75.
    half = affine_map((5, 6), 2.0, 0.0, (0, 0))
    zoomed = ops.convert_to_numpy(resample(ops.convert_to_tensor(image), np.float32(half), 0.5))
    np.testing.assert_allclose(
        zoomed[0, 2, 1], 0.25 * image[0, 2, 1] + 0.75 * image[0, 2, 2], atol=1e-6
    )


def test_auto_is_pixel_for_grayscale_or_small_inputs() -> None:
    auto = PatternOptions()  # the default: Fourier where it met its VGG16 targets
    assert auto.parameterization == "auto"
    assert resolved_parameterization(auto, (16, 16, 1)) == "pixel"
    assert resolved_parameterization(auto, (31, 64, 3)) == "pixel"
    assert resolved_parameterization(auto, (32, 32, 3)) == "fourier"
    assert resolved_parameterization(PatternOptions(parameterization="pixel"), (64, 64, 3)) == (
        "pixel"
    )
    with pytest.raises(ValueError, match="parameterization must be one of"):
        PatternOptions(parameterization="fft")
    with pytest.raises(ValueError, match="needs variants ≥ 2"):
        PatternOptions(diversity=1.0)
    with pytest.raises(ValueError, match="transforms must be one of"):
        PatternOptions(transforms="lucid")
    with pytest.raises(TypeError, match="preprocess must be a function"):
        PatternOptions(preprocess="caffe")
    with pytest.raises(ValueError, match="decay_power must be ≥ 0"):
        PatternOptions(decay_power=-1)


def _bgr_red_detector() -> keras.Model:
    """A 1x1 conv over BGR inputs that sums the third channel: red, for an RGB image."""
    model = keras.Sequential([keras.Input((32, 32, 3)), layers.Conv2D(1, 1, name="red")])
    model.layers[0].set_weights([np.array([0.0, 0.0, 1.0]).reshape(1, 1, 3, 1), np.zeros(1)])
    return model


def bgr_without_mean(images):
    """As caffe-style models take RGB images in [0, 1]: BGR, the mean (grey) taken off."""
    return ops.flip(images, axis=-1) - 0.5


@pytest.mark.parametrize("parameterization", ["pixel", "fourier"])
def test_preprocess_feeds_the_model_while_patterns_stay_rgb(parameterization) -> None:
    # The model reads BGR; through preprocess the patterns come back RGB, and red. Pixel by
    # hand: d(mean of R)/dR is 1/1024 at each pixel, 0 for G and B, so each of 3 normalized steps
    # adds 0.05·√3 to R only, from exact grey: R = 0.5 + 0.15·√3 ≈ 0.76.
    model = _bgr_red_detector()
    pixel = {"steps": 3, "step_size": 0.05, "noise": 0.0, "jitter": 0, "blur": 0.0}
    patterns = vc.filter_patterns(
        model,
        "red",
        parameterization=parameterization,
        preprocess=bgr_without_mean,
        **(pixel if parameterization == "pixel" else {}),
    )
    assert patterns.shape == (1, 32, 32, 3)
    red, green, blue = patterns[0].mean(axis=(0, 1))
    if parameterization == "pixel":
        np.testing.assert_allclose(patterns[0, ..., 0], 0.5 + 0.15 * np.sqrt(3), rtol=1e-5)
        np.testing.assert_allclose(patterns[0, ..., 1:], 0.5, rtol=1e-6)
        return
    # Fourier's colours are ImageNet-correlated, so green and blue rise with red (measured: 0.87
    # red, 0.82 green, 0.81 blue), but red leads; without preprocess the model's third channel
    # is the image's blue, and blue leads (0.79, 0.81, 0.87).
    assert red > max(green, blue) + 0.04
    plain = vc.filter_patterns(model, "red", parameterization="fourier")[0].mean(axis=(0, 1))
    assert plain[2] > max(plain[:2]) + 0.04


def _stripes(patterns: np.ndarray) -> tuple[float, float]:
    """How much pattern 0 changes across its columns rather than along them (vertical stripes),
    and pattern 1 the other way round: ratios of neighbours' squared differences."""
    vertical, horizontal = patterns[0, ..., 0], patterns[1, ..., 0]
    across = np.mean(np.diff(vertical, axis=1) ** 2) / np.mean(np.diff(vertical, axis=0) ** 2)
    down = np.mean(np.diff(horizontal, axis=0) ** 2) / np.mean(np.diff(horizontal, axis=1) ** 2)
    return float(across), float(down)


@pytest.mark.parametrize("transforms", ["none", "standard"])
def test_fourier_edge_detectors_are_oriented_and_deterministic(transforms) -> None:
    model = handset.edge_detectors()
    options = PatternOptions(parameterization="fourier", transforms=transforms)
    patterns = FilterPatterns(model, "edges", options)
    first, again, other = patterns(seed=0), patterns(seed=0), patterns(seed=1)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)
    if keras.backend.backend() == "tensorflow":
        assert patterns._ascend.experimental_get_tracing_count() == 1
    assert first.shape == (2, 16, 16, 1) and first.min() >= 0.0 and first.max() <= 1.0
    assert min(_stripes(first)) > 1.3  # the right orientation, if blurry at 16 px
    activation = ops.convert_to_numpy(model(first)).mean(axis=(1, 2))
    assert activation[0, 0] > 0.3 and activation[1, 1] > 0.3  # grey gives 0


def test_auto_takes_pixels_where_they_read_better_small_grayscale() -> None:
    # Why "auto" is pixel under 32 px or in grayscale: 2-pixel stripes are high frequencies,
    # which Fourier's 1/f prior damps. Measured at the default 30 steps: pixel activation 0.68
    # and 0.60, stripe ratios 12 and 11; Fourier (standard transforms) 0.58, 0.58, and 2.5, 2.1
    # (with Lucid's decay_power=1 and learning rate 0.05: 0.45, 0.46, and 2.3, 2.7).
    model = handset.edge_detectors()
    found = {
        name: vc.filter_patterns(model, "edges", parameterization=name)
        for name in ("auto", "pixel", "fourier")
    }
    np.testing.assert_array_equal(found["auto"], found["pixel"])
    activation = {
        name: np.diag(ops.convert_to_numpy(model(images)).mean(axis=(1, 2)))
        for name, images in found.items()
    }
    assert activation["pixel"].mean() > activation["fourier"].mean() + 0.03
    assert min(_stripes(found["pixel"])) > 3 * max(_stripes(found["fourier"]))


def _linear_softmax() -> keras.Model:
    model = keras.Sequential(
        [
            keras.Input((2, 2, 1)),
            layers.Flatten(),
            layers.Dense(2, activation="softmax", name="scores"),
        ]
    )
    model.layers[-1].set_weights([np.array([[1.0, 0], [2, 0], [0, 1], [-1, 3]]), np.zeros(2)])
    return model


def test_class_patterns_ascend_the_logit_not_the_probability() -> None:
    # logit_k = w_k · x: its gradient is w_k, so each normalized pixel step adds
    # step_size · w_k / rms(w_k) from exact grey. The probability's gradient, p_k (w_k - Σ p_j
    # w_j), points elsewhere (for class 0 it would darken pixel 3, which w_0 leaves alone).
    patterns = vc.class_patterns(
        _linear_softmax(), [1, 0], steps=3, step_size=0.05, noise=0.0, jitter=0, blur=0.0
    )
    assert patterns.shape == (2, 2, 2, 1)
    for image, w in zip(patterns, ([0.0, 0, 1, 3], [1.0, 2, 0, -1]), strict=True):
        w = np.array(w)
        expected = np.clip(0.5 + 3 * 0.05 * w / np.sqrt(np.mean(w**2)), 0, 1)
        np.testing.assert_allclose(image.reshape(-1), expected, rtol=1e-5)
    with pytest.raises(ValueError, match="output 'scores' has 2"):
        vc.class_patterns(_linear_softmax(), [2])


def test_diversity_pushes_variants_apart() -> None:
    # Three variants of the vertical-edge detector's pattern: alike without diversity (Gram
    # cosine ≈ 1: all vertical stripes); with it, one variant turns to the other filter's
    # horizontal edges, while the others still drive their own filter.
    model = handset.edge_detectors()
    found = {
        weight: vc.filter_patterns(model, "edges", filters=[0], variants=3, diversity=weight)
        for weight in (0.0, 0.5)
    }
    similarity = {
        weight: ops.convert_to_numpy(_gram_similarity(model(images), 3))
        for weight, images in found.items()
    }
    assert found[0.5].shape == (3, 16, 16, 1)
    assert similarity[0.0].min() > 0.99 and similarity[0.5].mean() < 0.7
    own = ops.convert_to_numpy(model(found[0.5])).mean(axis=(1, 2))[:, 0]
    assert np.sort(own)[-2:].min() > 0.5
    # Two identical variants are as similar as can be: cosine 1.
    twins = ops.convert_to_numpy(_gram_similarity(model(np.repeat(found[0.0][:1], 2, 0)), 2))
    np.testing.assert_allclose(twins, [1.0, 1.0], rtol=1e-5)


def test_logger_logs_class_patterns_per_epoch(digits, tmp_path: Path) -> None:
    x, y = digits
    logger = vc.FilterPatternLogger(
        [vc.TensorBoardWriter(tmp_path)], layers=[], classes=[0, 7], steps=5, every_n_epochs=1
    )
    model = models.compiled(models.functional())
    model.fit(x[:64], y[:64], epochs=2, batch_size=32, verbose=0, callbacks=[logger])
    events = read_events(tmp_path)
    assert tag_steps(events) == {
        (f"{kind}/probs", step)
        for kind in ("class_patterns", "class_patterns_seconds")
        for step in (0, 1, 2)
    }
    grid = events["class_patterns/probs"][2]  # two 16x16 patterns, 2x enlarged, one row, 1 px apart
    assert grid.shape == (32, 65, 3)
    expected = vc.class_patterns(model, [0, 7], steps=5)
    assert np.abs(grid.astype(int) - tile_patterns(expected)).max() <= 1
