"""One probe reader for every logger: one sample or a batch, as the model's input rank says.

Each case is a real ``fit`` with an ActivationLogger, a GradCAMLogger and an AttributionLogger on
one writer; the event files are read back. Picture sizes on paper: a signal's map is its curve
(96 px) over a 64-px band, each step ``ceil(256 / T)`` px wide; a volume's map is its depth slices
in a row, 1 grey px between them, enlarged (nearest) until the long side reaches 32 px.
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np
import pytest
from keras import layers

import vizcallbacks as vc
from tests import models
from tests.events import read_events
from vizcallbacks.compute.probe import probe_shape_error

METHODS = {"saliency": {}, "grad_cam": {}, "occlusion": {"patch": 2}}


def _classifier(inputs: keras.KerasTensor, h: keras.KerasTensor, pool: type) -> keras.Model:
    h = pool(name="gap")(h)
    return keras.Model(inputs, layers.Dense(2, activation="softmax", name="probs")(h))


def conv1d() -> keras.Model:
    inputs = keras.Input((32, 2))
    h = layers.Conv1D(3, 3, padding="same", activation="relu", name="conv")(inputs)
    return _classifier(inputs, h, layers.GlobalAveragePooling1D)


def conv3d() -> keras.Model:
    inputs = keras.Input((3, 4, 4, 1))
    h = layers.Conv3D(2, 3, padding="same", activation="relu", name="conv")(inputs)
    return _classifier(inputs, h, layers.GlobalAveragePooling3D)


def video() -> keras.Model:
    """Four frames of 8x8, each through the same Conv2D; the frames' mean features classified."""
    inputs = keras.Input((4, 8, 8, 1))
    conv = layers.Conv2D(2, 3, padding="same", activation="relu")
    h = layers.TimeDistributed(conv, name="conv")(inputs)
    h = layers.TimeDistributed(layers.GlobalAveragePooling2D(), name="frame_means")(h)
    return _classifier(inputs, h, layers.GlobalAveragePooling1D)


def _data(shape: tuple[int, ...], n: int = 16) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = np.arange(n) % 2
    x = rng.normal(size=(n, *shape)).astype("float32") + y.reshape(-1, *[1] * len(shape))
    return x, y.astype("int64")


def _fit_all(model: keras.Model, x, y, probe, log_dir: Path, methods=METHODS) -> tuple:
    writers = [vc.TensorBoardWriter(log_dir)]
    loggers = (
        vc.ActivationLogger(probe, writers, layers=["conv"]),
        vc.GradCAMLogger(probe, writers),
        vc.AttributionLogger(probe, writers, methods, individual=True),
    )
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    model.fit(x, y, epochs=1, batch_size=8, verbose=0, callbacks=list(loggers))
    return loggers, read_events(log_dir)


def _assert_logged(events: dict, names: list[str], picture: tuple[int, ...]) -> None:
    """Every logger's images at steps 0 and 1, the maps drawn ``picture`` large."""
    for name in names:
        suffix = "" if name is None else f"/{name}"
        assert set(events[f"activations/conv{suffix}"]) == {0, 1}
        assert events[f"gradcam/conv{suffix}"][1].shape == picture
        for method in METHODS:
            assert events[f"attribution/{method}{suffix}"][1].shape == picture
    assert set(events["attribution_methods/all_probes"]) == {0, 1}


@pytest.mark.parametrize("batch", [False, True], ids=["x[0]", "x[:3]"])
def test_conv1d_signal_or_batch_of_signals(batch: bool, tmp_path: Path) -> None:
    x, y = _data((32, 2))
    probe = x[:3] if batch else x[0]
    loggers, events = _fit_all(conv1d(), x, y, probe, tmp_path)
    n = 3 if batch else 1
    assert {logger.probe.shape for logger in loggers} == {(n, 32, 2)}
    # 32 steps, 8 px each: 256 wide; the curve's 96 px over the band's 64.
    _assert_logged(events, ["0", "1", "2"] if batch else [None], (160, 256, 3))
    model = conv1d()
    assert vc.grad_cam(model, x[0]).shape == (1, 32)
    assert vc.saliency(model, x[:3]).shape == (3, 32)
    assert vc.layer_activations(model, x[0])["conv"].shape == (1, 32, 3)


@pytest.mark.parametrize("batch", [False, True], ids=["x[0]", "x[:2]"])
def test_conv3d_volume_or_batch_of_volumes(batch: bool, tmp_path: Path) -> None:
    x, y = _data((3, 4, 4, 1))
    probe = x[:2] if batch else x[0]
    loggers, events = _fit_all(conv3d(), x, y, probe, tmp_path)
    n = 2 if batch else 1
    assert {logger.probe.shape for logger in loggers} == {(n, 3, 4, 4, 1)}
    # Three 4x4 slices in a row: 4 x 14, enlarged 3x to 12 x 42.
    _assert_logged(events, ["0", "1"] if batch else [None], (12, 42, 3))
    heatmaps = vc.grad_cam(conv3d(), x[0])
    assert heatmaps.shape == (1, 3, 4, 4) and heatmaps.max() in (0.0, 1.0)


def test_video_model_given_one_clip(tmp_path: Path) -> None:
    x, y = _data((4, 8, 8, 1))
    loggers, events = _fit_all(video(), x, y, x[0], tmp_path)
    assert {logger.probe.shape for logger in loggers} == {(1, 4, 8, 8, 1)}
    # Four 8x8 frames in a row: 8 x 35, already 32 px long.
    _assert_logged(events, [None], (8, 35, 3))
    assert loggers[1].layer_name == "conv"


def test_two_inputs_one_example_each(digits, tmp_path: Path) -> None:
    x, y = digits
    extra = np.random.default_rng(0).normal(size=(len(x), 3)).astype("float32")
    probe = (x[0], extra[0])
    writers = [vc.TensorBoardWriter(tmp_path)]
    loggers = [
        vc.ActivationLogger(probe, writers, layers=["conv_a"]),
        vc.GradCAMLogger(probe, writers),
        vc.AttributionLogger(probe, writers, ["grad_cam", "layer_cam"]),
    ]
    model = models.compiled(models.two_inputs())
    model.fit([x[:32], extra[:32]], y[:32], epochs=1, verbose=0, callbacks=loggers)
    events = read_events(tmp_path)
    assert {logger.probe.shape for logger in loggers} == {(1, 16, 16, 1)}
    for tag in ("activations/conv_a", "gradcam/conv_a", "attribution/layer_cam"):
        assert set(events[tag]) == {0, 1}
    assert events["gradcam/conv_a"][1].shape == (32, 32, 3)  # 16x16 enlarged twice
    refused = vc.AttributionLogger(probe, [vc.TensorBoardWriter(tmp_path / "b")], ["saliency"])
    with pytest.raises(ValueError, match="saliency explains models with one image input"):
        model.fit([x[:8], extra[:8]], y[:8], verbose=0, callbacks=[refused])


LOGGERS = {
    "ActivationLogger": lambda probe, writers: vc.ActivationLogger(probe, writers),
    "GradCAMLogger": lambda probe, writers: vc.GradCAMLogger(probe, writers),
    "AttributionLogger": lambda probe, writers: vc.AttributionLogger(probe, writers, ["saliency"]),
}
NOTEBOOK = {
    "layer_activations": vc.layer_activations,
    "grad_cam": vc.grad_cam,
    "saliency": vc.saliency,
}
# A grayscale image without its channel axis, and one image given to a volume model.
REFUSED = {
    "image": (models.functional, (16, 16), (16, 16, 1)),
    "volume": (conv3d, (4, 4, 1), (3, 4, 4, 1)),
}


@pytest.mark.parametrize("case", sorted(REFUSED))
@pytest.mark.parametrize("logger", sorted(LOGGERS))
def test_one_refusal_for_every_logger(logger: str, case: str, tmp_path: Path) -> None:
    factory, received, expected = REFUSED[case]
    message = str(probe_shape_error(received, expected))
    assert f"probe has shape {received}" in message and str(expected) in message
    model = factory()
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    callback = LOGGERS[logger](np.zeros(received, "float32"), [vc.TensorBoardWriter(tmp_path)])
    x = np.zeros((4, *expected), "float32")
    with pytest.raises(ValueError) as refused:
        model.fit(x, np.zeros(4, "int64"), epochs=1, verbose=0, callbacks=[callback])
    assert str(refused.value) == message
    for function in NOTEBOOK.values():
        with pytest.raises(ValueError) as refused:
            function(model, np.zeros(received, "float32"))
        assert str(refused.value) == message


def test_refusal_names_the_fix() -> None:
    message = str(probe_shape_error((16, 16), (16, 16, 1)))
    assert message == (
        "probe has shape (16, 16) but the model expects inputs of shape (16, 16, 1) (batch axis "
        "left out). Pass one sample of that shape or a batch (N, 16, 16, 1), preprocessed like "
        "the training data; its channel axis is missing: add it with [..., None]."
    )
