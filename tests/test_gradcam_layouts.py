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
    np.testing.assert_allclose(first(x_first), last(x_last), rtol=1e-5, atol=1e-6)
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
