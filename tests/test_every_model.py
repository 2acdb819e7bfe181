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


def test_early_stop_logs_the_last_completed_epoch(digits, tmp_path: Path) -> None:
    """every_n_epochs=3, but EarlyStopping ends training after epoch 2: step 2 is logged."""
    x, y = digits
    writers = [vc.TensorBoardWriter(tmp_path)]
    # The loss must fall by 10 to count as better: the second epoch never does.
    stop = keras.callbacks.EarlyStopping(monitor="loss", min_delta=10.0, patience=1)
    history = models.compiled(models.functional()).fit(
        x[:32],
        y[:32],
        epochs=10,
        verbose=0,
        callbacks=[stop, vc.ActivationLogger(x[0], writers, every_n_epochs=3)],
    )
    assert len(history.history["loss"]) == 2
    assert sorted(read_events(tmp_path)["activations/conv_a"]) == [0, 2]


class _TrainOnly(keras.layers.Layer):
    """A layer that refuses to run in inference mode: fit works, our inference pass cannot."""

    def call(self, x, training=None):
        if training is False:
            raise RuntimeError("this layer only runs while training")
        return x


def test_our_failure_switches_the_logger_off_and_training_goes_on(
    digits, tmp_path: Path, caplog
) -> None:
    x, y = digits
    inputs = keras.Input((16, 16, 1))
    h = keras.layers.Conv2D(4, 3, activation="relu", name="conv_a")(inputs)
    h = _TrainOnly(name="train_only")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    model = models.compiled(keras.Model(inputs, keras.layers.Dense(10, "softmax")(h)))
    writers = [vc.TensorBoardWriter(tmp_path)]
    with caplog.at_level("WARNING", "vizcallbacks"):
        history = model.fit(
            x[:32],
            y[:32],
            epochs=2,
            verbose=0,
            callbacks=[vc.ActivationLogger(x[0], writers), vc.FilterLogger(writers)],
        )
    assert len(history.history["loss"]) == 2
    assert caplog.text.count("ActivationLogger is switched off") == 1
    assert "only runs while training" in caplog.text and "report" in caplog.text
    events = read_events(tmp_path)
    assert sorted(events["filters/conv_a"]) == [0, 1, 2]  # the other logger went on
    assert not any(tag.startswith("activations/") for tag in events)
