"""Filter patterns by gradient ascent: a linear layer whose ascent is written down, edge detectors
that must give stripes, determinism, one batch in one compiled loop, and the callback's events."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
from keras import layers

import vizcallbacks as vc
from tests import handset, models
from tests.events import read_events, tag_steps
from vizcallbacks.callbacks.patterns import FilterPatternLogger
from vizcallbacks.compute.patterns import FilterPatterns, PatternOptions, filter_patterns
from vizcallbacks.render.overlay import pattern_images, tile_patterns


@pytest.mark.parametrize(
    ("steps", "step_size", "value_range"), [(5, 0.02, (0.0, 1.0)), (2, 0.1, (-1.0, 1.0))]
)
def test_linear_layer_ascent_by_hand(steps, step_size, value_range) -> None:
    # mean activation of filter f = mean_ij(x_ij · W_f) + b: its gradient is W_f / 16 at every
    # pixel, whose RMS over (H, W, C) is rms(W_f) / 16. Each normalized step therefore adds
    # step_size · span · W_f / rms(W_f) to every pixel, starting from exact grey (noise=0).
    low, high = value_range
    patterns = filter_patterns(
        handset.linear_1x1(),
        "mix",
        steps=steps,
        step_size=step_size,
        noise=0.0,
        value_range=value_range,
    )  # the default jitter and blur change nothing here: the image stays constant per channel
    assert patterns.shape == (2, 4, 4, 3) and patterns.dtype == np.float32
    for f, w in enumerate((handset.W0, handset.W1)):
        moved = (low + high) / 2 + steps * step_size * (high - low) * w / np.sqrt(np.mean(w**2))
        np.testing.assert_allclose(patterns[f], np.broadcast_to(moved, (4, 4, 3)), rtol=1e-5)


def test_ascent_stays_in_value_range_and_selects_filters() -> None:
    model = handset.linear_1x1()
    # 20 steps of 0.05 would carry filter 0's channels to 0.5 + 1.0 · (1, 2, 2)/√3 > 1: clipped.
    clipped = filter_patterns(model, "mix", steps=20, noise=0.0, step_size=0.05)
    np.testing.assert_allclose(clipped[0, 0, 0], [1.0, 1.0, 1.0])
    np.testing.assert_allclose(clipped[1, 0, 0], [0.5, 0.5, 0.0])
    only_second = filter_patterns(model, "mix", filters=[1], steps=20, noise=0.0, step_size=0.05)
    np.testing.assert_array_equal(only_second, clipped[1:])
    assert filter_patterns(model, "mix", filters=16, steps=1).shape[0] == 2  # capped at the layer
    with pytest.raises(ValueError, match="layer 'mix' has 2"):
        filter_patterns(model, "mix", filters=[0, 2])
    with pytest.raises(ValueError, match="steps must be ≥ 1"):
        filter_patterns(model, "mix", steps=0)
    with pytest.raises(ValueError, match="value_range"):
        filter_patterns(model, "mix", value_range=(1.0, 0.0))


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a - a.mean(), b - b.mean()
    return float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum()))


def _stripe_scores(pattern: np.ndarray) -> tuple[float, float]:
    """How much ``pattern`` looks like vertical stripes, whatever their phase and width.

    Vertical stripes are unchanged by a shift along the columns: the correlation of the pattern
    with itself moved one row down is ≈ 1 (≈ 0 or below for horizontal stripes). And they change
    across, not along, the columns: the ratio of horizontal to vertical squared differences is
    large (small for horizontal stripes).
    """
    along = _corr(pattern[1:], pattern[:-1])
    across = np.mean(np.diff(pattern, axis=1) ** 2) / np.mean(np.diff(pattern, axis=0) ** 2)
    return along, float(across)


@pytest.mark.parametrize(
    "options", [{"jitter": 0, "blur": 0.0}, {}], ids=["plain", "default_jitter_and_blur"]
)
@pytest.mark.parametrize("seed", [0, 1])
def test_edge_detector_patterns_are_stripes(options, seed) -> None:
    patterns = filter_patterns(handset.edge_detectors(), "edges", seed=seed, **options)[..., 0]
    along, across = _stripe_scores(patterns[0])  # vertical-edge detector: vertical stripes
    assert along > 0.8 and across > 5.0
    along, across = _stripe_scores(patterns[1].T)  # transposed detector: horizontal stripes
    assert along > 0.8 and across > 5.0
    along, across = _stripe_scores(patterns[1])  # ... which are not vertical ones
    assert along < 0.6 and across < 0.2


def test_filter_that_never_fires_is_reported_and_drawn_black(caplog) -> None:
    model = keras.Sequential([keras.Input((4, 4, 1)), layers.Conv2D(2, 1, activation="relu")])
    model.layers[0].set_weights([np.ones((1, 1, 1, 2)), np.array([0.0, -10.0])])  # 2nd: silent
    patterns = FilterPatterns(model, 0, PatternOptions(jitter=0, blur=0.0, noise=0.2))
    result = patterns.ascend(seed=0)
    assert result.responded.tolist() == [True, False]
    start = 0.5 + np.random.default_rng(0).uniform(-0.5, 0.5, (2, 4, 4, 1)) * 0.2
    np.testing.assert_allclose(result.images[1], start[1], rtol=1e-6)  # never moved
    assert (result.images[0] > start[0]).all()  # filter 0 (x · 1) brightens every pixel
    with caplog.at_level("WARNING", logger="vizcallbacks"):
        filter_patterns(model, 0)
    assert "filters [1] of layer" in caplog.text and "never fired" in caplog.text
    tiles = tile_patterns(result.images, blank=~result.responded, cols=2)
    assert tiles[:, 33:].max() == 0 and tiles[:, :32].max() > 0  # 4x4 tiles enlarged 8x


def test_pattern_pictures_by_hand() -> None:
    # Centred on grey, one standard deviation = 15 % of the range: values 0 and 2 (mean 1, std 1)
    # become 0.35 and 0.65 → round(89.25) = 89 and round(165.75) = 166, grey in every channel.
    grey = pattern_images(np.array([0.0, 2.0]).reshape(1, 1, 2, 1))
    np.testing.assert_array_equal(grey[0, 0], [[89, 89, 89], [166, 166, 166]])
    rgb = np.zeros((2, 1, 2, 3))
    rgb[0, 0, 1] = [2.0, 0.0, np.nan]  # a NaN pixel is magenta; a constant pattern mid-grey
    pictures = pattern_images(rgb)
    assert pictures.flags.writeable and pictures.shape == (2, 1, 2, 3)
    assert pictures[0, 0, 1].tolist() == [255, 0, 255] and (pictures[1] == 128).all()
    assert (pattern_images(rgb, blank=np.array([False, True]))[1] == 0).all()


def test_deterministic_one_batch_one_trace() -> None:
    model = models.functional()
    patterns = FilterPatterns(model, "conv_b", PatternOptions(filters=[0, 3, 5], steps=10))
    first, again, other = patterns(seed=3), patterns(seed=3), patterns(seed=4)
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)
    # All filters in one batch: a single traced loop, whatever the number of filters or seeds.
    if keras.backend.backend() == "tensorflow":
        assert patterns._ascend.experimental_get_tracing_count() == 1
    assert first.shape == (3, 16, 16, 1) and np.isfinite(first).all()
    assert first.min() >= 0.0 and first.max() <= 1.0


def test_nested_unbuilt_and_model_unchanged() -> None:
    model = models.nested()
    base = model.layers[0]
    base.trainable = False
    weights = [np.array(w) for w in model.weights]
    patterns = filter_patterns(model, "base/conv_b", filters=2, steps=5, jitter=2, blur=0.5)
    assert patterns.shape == (2, 16, 16, 1)
    assert all(np.array_equal(w, np.array(v)) for w, v in zip(weights, model.weights, strict=True))
    assert [la.trainable for la in base.layers] == [False, False] and not base.trainable
    assert model.dtype_policy.name == "float32"

    unbuilt = models.sequential_without_input()
    with pytest.raises(ValueError, match=r"image_shape=\(H, W, C\)"):
        filter_patterns(unbuilt, "conv_a")
    assert filter_patterns(unbuilt, "conv_a", image_shape=(16, 16, 1), steps=2).shape[0] == 6


@pytest.mark.tensorflow_only  # XLA's float16 on CPU rounds more (mean 0.006 on JAX)
def test_mixed_precision() -> None:
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        mixed = models.functional()
        assert mixed.get_layer("conv_b").compute_dtype == "float16"
        keras.mixed_precision.set_global_policy("float32")
        reference = models.functional()
        reference.set_weights(mixed.get_weights())
        patterns = FilterPatterns(mixed, "conv_b", PatternOptions(filters=4, steps=10)).ascend()
        expected = FilterPatterns(reference, "conv_b", PatternOptions(filters=4, steps=10)).ascend()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert mixed.dtype_policy.name == "mixed_float16"
    assert patterns.images.dtype == np.float32 and np.isfinite(patterns.images).all()
    np.testing.assert_array_equal(patterns.responded, expected.responded)
    assert np.abs(patterns.images - expected.images).mean() < 0.002  # float16 rounding only


def test_logger_through_event_files(digits, tmp_path: Path) -> None:
    x, y = digits
    writers = [vc.TensorBoardWriter(tmp_path)]
    logger = FilterPatternLogger(
        writers, layers=["conv_a", "conv_b"], filters=4, every_n_epochs=2, steps=10
    )
    model = models.compiled(models.functional())
    model.fit(x[:64], y[:64], epochs=3, batch_size=32, verbose=0, callbacks=[logger])
    events = read_events(tmp_path)
    assert tag_steps(events) == {
        (f"{kind}/{layer}", step)
        for kind in ("filter_patterns", "filter_patterns_seconds")
        for layer in ("conv_a", "conv_b")
        for step in (0, 2, 3)
    }
    grid = events["filter_patterns/conv_a"][3]  # 4 patterns of 16x16, 2x enlarged, 2x2 grid
    assert grid.shape == (65, 65, 3) and grid.dtype == np.uint8
    expected = tile_patterns(filter_patterns(model, "conv_a", filters=4, steps=10))
    assert np.abs(grid.astype(int) - expected).max() <= 1
    assert 0.0 < events["filter_patterns_seconds/conv_b"][3] < 60.0


def test_logger_defaults_on_nested_and_unbuilt_models(digits, tmp_path: Path) -> None:
    x, y = digits
    nested_dir, unbuilt_dir = tmp_path / "nested", tmp_path / "unbuilt"
    for factory, log_dir in (
        (models.nested, nested_dir),
        (models.sequential_without_input, unbuilt_dir),
    ):
        logger = FilterPatternLogger([vc.TensorBoardWriter(log_dir)], filters=2, steps=3)
        models.compiled(factory()).fit(x[:32], y[:32], epochs=2, verbose=0, callbacks=[logger])
    # Every conv layer by default; the last epoch is always logged.
    assert {t for t, _ in tag_steps(read_events(nested_dir))} == {
        f"{kind}/base/{layer}"
        for kind in ("filter_patterns", "filter_patterns_seconds")
        for layer in ("conv_a", "conv_b")
    }
    assert sorted(read_events(nested_dir)["filter_patterns/base/conv_a"]) == [0, 2]
    # An unbuilt Sequential gets its input size from the first training step: no step 0 on
    # TensorFlow; JAX's and PyTorch's fit build the model before on_train_begin.
    first = [2] if keras.backend.backend() == "tensorflow" else [0, 2]
    assert sorted(read_events(unbuilt_dir)["filter_patterns/conv_a"]) == first
    with pytest.raises(ValueError, match="filters must be ≥ 1"):
        FilterPatternLogger([vc.TensorBoardWriter(tmp_path)], filters=0)


def test_slow_patterns_are_reported_once(digits, tmp_path: Path, monkeypatch, caplog) -> None:
    from vizcallbacks.callbacks import patterns

    monkeypatch.setattr(patterns, "SLOW_STEP_SECONDS", 0.0)  # every step counts as slow
    x, y = digits
    logger = FilterPatternLogger(
        [vc.TensorBoardWriter(tmp_path)], layers=["conv_a"], filters=2, every_n_epochs=1, steps=2
    )
    with caplog.at_level("WARNING", "vizcallbacks"):
        models.compiled(models.functional()).fit(
            x[:32], y[:32], epochs=2, verbose=0, callbacks=[logger]
        )
    assert caplog.text.count("filter patterns took") == 1
    assert "conv_a" in caplog.text and "every_n_epochs" in caplog.text
