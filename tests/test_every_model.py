"""Graphs nobody on the project wrote: the loggers follow whatever Keras builds."""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest

import vizcallbacks as vc
from tests import models
from tests.events import read_events


def test_tensor_arithmetic_residual_trains_and_logs(digits, tmp_path: Path) -> None:
    """``x + shortcut`` and ``x * 0.5`` are keras.ops operations: no ``training`` argument."""
    x, y = digits
    model = models.compiled(models.tensor_arithmetic_residual())
    writers = [vc.TensorBoardWriter(tmp_path)]
    history = model.fit(
        x[:64],
        y[:64],
        epochs=2,
        batch_size=32,
        verbose=0,
        callbacks=[vc.ActivationLogger(x[0], writers), vc.GradCAMLogger(x[0], writers)],
    )
    assert len(history.history["loss"]) == 2
    events = read_events(tmp_path)
    for layer in ("proj", "conv_a", "conv_b"):
        assert set(events[f"activations/{layer}"]) == {0, 1, 2}
    # The block's output equals the replay's: the arithmetic ran as the model runs it.
    maps = vc.layer_activations(model, x[:1], layers=["conv_b", "proj", "gap"])
    conv_b, proj = maps["conv_b"][0], maps["proj"][0]
    expected_gap = np.maximum((conv_b + proj) * 0.5, 0).mean(axis=(0, 1))
    np.testing.assert_allclose(maps["gap"][0], expected_gap, rtol=1e-5, atol=1e-6)
    heatmap = vc.grad_cam(model, x[:1])
    assert heatmap.shape == (1, 16, 16) and np.isfinite(heatmap).all()


@pytest.mark.slow
def test_convnext_trains_and_logs(tmp_path: Path) -> None:
    """ConvNeXt's blocks add their residual with ``keras.ops``: the same family as above."""
    from skimage import data
    from skimage.transform import resize

    model = keras.applications.ConvNeXtTiny(
        weights=None, input_shape=(32, 32, 3), classes=2, include_preprocessing=False
    )
    model.compile("adam", "sparse_categorical_crossentropy")
    photo = resize(data.chelsea(), (32, 32), anti_aliasing=True).astype("float32")
    x = np.stack([photo, photo[:, ::-1]] * 4)
    y = np.array([0, 1] * 4)
    writers = [vc.TensorBoardWriter(tmp_path)]
    first_block = "convnext_tiny_stage_0_block_0_depthwise_conv"
    model.fit(
        x,
        y,
        epochs=1,
        batch_size=4,
        verbose=0,
        callbacks=[
            vc.ActivationLogger(photo, writers, layers=[first_block]),
            vc.GradCAMLogger(photo, writers),
        ],
    )
    events = read_events(tmp_path)
    assert set(events[f"activations/{first_block}"]) == {0, 1}
    assert [tag for tag in events if tag.startswith("gradcam/")] != []
