"""Grad-CAM beyond channels_last images: channels_first models against their channels_last twins."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
from keras import layers

import vizcallbacks as vc
from tests.events import read_events, tag_steps
from vizcallbacks.callbacks.gradcam import GradCAMLogger


def _twin_cnns() -> tuple[keras.Model, keras.Model]:
    """The same small CNN built channels_first ``(1, 8, 8)`` and channels_last ``(8, 8, 1)``."""
    built = []
    for fmt, shape in (("channels_first", (1, 8, 8)), ("channels_last", (8, 8, 1))):
        inputs = keras.Input(shape)
        x = layers.Conv2D(4, 3, padding="same", activation="relu", data_format=fmt, name="c1")(
            inputs
        )
        x = layers.Conv2D(3, 3, padding="same", activation="relu", data_format=fmt, name="c2")(x)
        x = layers.GlobalAveragePooling2D(data_format=fmt, name="gap")(x)
        built.append(keras.Model(inputs, layers.Dense(3, name="head")(x)))
    first, last = built
    rng = np.random.default_rng(0)
    weights = [rng.normal(0, 0.5, w.shape).astype(np.float32) for w in last.get_weights()]
    last.set_weights(weights)
    first.set_weights(weights)  # Conv2D kernels are (kh, kw, in, out) in both layouts
    return first, last


def _images(n: int = 3) -> tuple[np.ndarray, np.ndarray]:
    last = np.random.default_rng(1).uniform(0, 1, (n, 8, 8, 1)).astype(np.float32)
    return np.moveaxis(last, -1, 1).copy(), last


def test_channels_first_heatmaps_equal_channels_last_twin() -> None:
    first, last = _twin_cnns()
    x_first, x_last = _images()
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(first(x_first)),
        keras.ops.convert_to_numpy(last(x_last)),
        rtol=1e-5,
        atol=1e-6,
    )
    for layer in (None, "c1"):
        expected = vc.grad_cam(last, x_last, layer=layer)
        heatmaps = vc.grad_cam(first, x_first, layer=layer)
        assert heatmaps.shape == (3, 8, 8) and expected.max() > 0
        np.testing.assert_allclose(heatmaps, expected, rtol=1e-4, atol=1e-5)
    for c in range(3):
        np.testing.assert_allclose(
            vc.grad_cam(first, x_first, class_index=c),
            vc.grad_cam(last, x_last, class_index=c),
            rtol=1e-4,
            atol=1e-5,
        )


def test_logger_on_channels_first_fit(tmp_path: Path) -> None:
    """A real ``fit`` of the channels_first model logs the same pictures as its twin's at step 0."""
    first, last = _twin_cnns()
    x_first, x_last = _images(8)
    y = np.arange(8) % 3
    logs = {}
    for name, model, x in (("first", first, x_first), ("last", last, x_last)):
        writers = [vc.TensorBoardWriter(tmp_path / name)]
        logger = GradCAMLogger(x[:1], writers, layer="c2")
        model.compile(optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(True))
        model.fit(x, y, epochs=1, batch_size=4, verbose=0, callbacks=[logger])
        logs[name] = read_events(tmp_path / name)
    assert {("gradcam/c2", 0), ("gradcam/c2", 1)} <= tag_steps(logs["first"])
    picture = logs["first"]["gradcam/c2"][0]
    assert picture.shape == logs["last"]["gradcam/c2"][0].shape
    # Step 0 is before training: the same weights, so the same overlay over the same picture.
    np.testing.assert_array_equal(picture, logs["last"]["gradcam/c2"][0])


def _bump_detector() -> keras.Model:
    """Conv1D with taps (1/3, 1/3, 1/3), same padding, ReLU → global mean → Dense (-1, +1)."""
    inputs = keras.Input((16, 1))
    conv = layers.Conv1D(1, 3, padding="same", activation="relu", name="bump")
    dense = layers.Dense(2, activation="softmax", name="head")
    model = keras.Model(inputs, dense(layers.GlobalAveragePooling1D(name="gap")(conv(inputs))))
    conv.set_weights([np.full((3, 1, 1), 1 / 3, np.float32), np.zeros(1, np.float32)])
    dense.set_weights([np.array([[-1.0, 1.0]], np.float32), np.zeros(2, np.float32)])
    return model


BUMP = np.zeros((1, 16, 1), np.float32)
BUMP[0, 6:9, 0] = 1.0  # one bump over steps 6, 7, 8


def test_conv1d_heatmap_peaks_at_the_bump_by_hand() -> None:
    model = _bump_detector()
    # d score_1 / dA = +1/16 at every step, so the map is A itself: the 3-step mean of the signal,
    # 1/3, 2/3, 1, 2/3, 1/3 over steps 5..9, already at the signal's length.
    expected = np.zeros(16)
    expected[5:10] = [1 / 3, 2 / 3, 1.0, 2 / 3, 1 / 3]
    heatmap = vc.grad_cam(model, BUMP)
    assert heatmap.shape == (1, 16) and heatmap.dtype == np.float32
    np.testing.assert_allclose(heatmap[0], expected, atol=1e-6)
    assert heatmap[0].argmax() == 7
    # Class 0 has weight -1: ReLU of negative evidence, a blank map.
    np.testing.assert_array_equal(vc.grad_cam(model, BUMP, class_index=0), np.zeros((1, 16)))


def test_logger_draws_the_signal_over_its_heatmap(tmp_path: Path) -> None:
    """16 steps stretched 16x to 256 px; a 96-px curve panel above a 64-px band: 160 x 256."""
    from vizcallbacks.render.curves import heatmap_band, signal_heatmap

    model = _bump_detector()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    logger = GradCAMLogger(BUMP, [vc.TensorBoardWriter(tmp_path)])
    x = np.concatenate([BUMP, np.zeros_like(BUMP)])
    model.fit(x, np.array([1, 0]), epochs=1, verbose=0, callbacks=[logger])
    events = read_events(tmp_path)
    assert {("gradcam/bump", 0), ("gradcam/bump", 1)} <= tag_steps(events)
    picture = events["gradcam/bump"][0]
    assert picture.shape == (160, 256, 3) and events["gradcam_heatmap/bump"][0].shape == (
        64,
        256,
        3,
    )
    heatmap = vc.grad_cam(_bump_detector(), BUMP)[0]
    np.testing.assert_array_equal(picture, signal_heatmap(BUMP[0], heatmap))
    np.testing.assert_array_equal(picture[96:], heatmap_band(heatmap))
    # The curve: the bump's top (steps 6..8, px 96..143) on row 0, the flat parts on row 95.
    assert (picture[0, 96:144] == 0).all() and (picture[95, :96] == 0).all()
    assert (picture[1:95, :96] == 255).all()
