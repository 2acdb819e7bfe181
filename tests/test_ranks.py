"""Every model Keras builds: Conv1D signals, Conv3D volumes, channels_first, depthwise kernels.

Real fits, event files read back; picture sizes worked out on paper from the layout rules:
feature-map tiles are enlarged (nearest) to at least 32 px and split by 1-px grey lines; a signal
heatmap has a row per channel, ``max(4, ceil(32 / C))`` px tall, each time step
``ceil(256 / T)`` px wide; a volume montage a row per channel and a column per depth slice.
"""

from __future__ import annotations

import logging
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import layers

import vizcallbacks as vc
from tests import models
from tests.events import read_events, tag_steps

STATS = (
    "activation_mean",
    "activation_std",
    "activation_zero_fraction",
    "dead_channels",
    "dead_channel_fraction",
    "channel_means",
)


def _pairs(drawn: list[str], other: list[str], convs: list[str], steps: int) -> set:
    """The (tag, step) pairs of an ActivationLogger and a FilterLogger over ``steps`` epochs."""
    pairs = {("probe/input", 0), ("vizcallbacks/params", 0)}
    for step in range(steps + 1):
        pairs |= {(f"{kind}/{layer}", step) for kind in STATS for layer in drawn + other}
        pairs |= {
            (f"{kind}/{layer}", step)
            for kind in ("activations", "mean_activation")
            for layer in drawn
        }
        pairs |= {(f"filters/{layer}", step) for layer in convs}
        if step:
            pairs |= {
                (f"{k}/{layer}", step)
                for k in ("filter_drift", "filter_drift_from_init")
                for layer in convs
            }
    pairs |= {(f"evolution/{layer}", steps) for layer in drawn}
    pairs |= {(f"filter_evolution/{layer}", steps) for layer in convs}
    return pairs


def _logged(events: dict) -> set:
    return {(t, s) for t, s in tag_steps(events) if not t.startswith("dead_channel_indices/")}


def _fit(model: keras.Model, x: np.ndarray, y: np.ndarray, log_dir: Path, probe, **kw) -> dict:
    writers = [vc.TensorBoardWriter(log_dir)]
    callbacks = [vc.ActivationLogger(probe, writers, **kw), vc.FilterLogger(writers)]
    models.compiled(model).fit(x, y, epochs=2, batch_size=16, verbose=0, callbacks=callbacks)
    return read_events(log_dir)


def _signals(n: int = 64, steps: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """Two noisy sine classes (2 and 5 cycles), a sine and a cosine channel."""
    rng = np.random.default_rng(0)
    y = np.arange(n) % 2
    t = np.linspace(0, 2 * np.pi, steps)[None, :] * np.where(y, 5, 2)[:, None]
    x = np.stack([np.sin(t), np.cos(t)], -1) + 0.1 * rng.normal(size=(n, steps, 2))
    return x.astype("float32"), y.astype("int64")


def test_conv1d_model_trains_and_logs_heatmaps(tmp_path: Path) -> None:
    x, y = _signals()
    inputs = keras.Input((32, 2))
    h = layers.Conv1D(4, 3, padding="same", activation="relu", name="conv1")(inputs)
    h = layers.GlobalAveragePooling1D(name="gap")(h)
    model = keras.Model(inputs, layers.Dense(2, activation="softmax", name="probs")(h))
    events = _fit(model, x, y, tmp_path, x[:1])

    assert _logged(events) == _pairs(["conv1"], ["gap", "probs"], ["conv1"], 2)
    # 4 channels x 32 steps: rows max(4, ceil(32/4)) = 8 px, steps ceil(256/32) = 8 px wide.
    assert {g.shape for g in events["activations/conv1"].values()} == {(4 * 8 + 3, 32 * 8, 3)}
    # The mean over channels: one row, max(4, 32) = 32 px tall.
    assert events["mean_activation/conv1"][2].shape == (32, 256, 3)
    # The probe: 2 channels, rows of 16 px: 2 * 16 + 1.
    assert events["probe/input"][0].shape == (33, 256, 3)
    # Kernels: a row per filter (4), a block per input (2); 1x3 taps enlarged 11x to 11x33.
    assert events["filters/conv1"][2].shape == (4 * 12 - 1, 2 * 34 - 1, 3)
    assert len(events["channel_means/conv1"][2]) > 0


def _stepped(n: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Signals of 16 steps with one step up (class 1) or down (class 0) at a random place."""
    rng = np.random.default_rng(1)
    x = np.zeros((n, 16, 1), "float32")
    y = np.arange(n) % 2
    for i, at in enumerate(rng.integers(3, 13, n)):
        x[i, at:, 0] = 1.0
        if not y[i]:
            x[i] = 1.0 - x[i]
    return x, y.astype("int64")


def frozen_taps() -> keras.Model:
    """A frozen Conv1D over 16 steps, kernel 3, no bias: filter 0 is ``x[t+2] - x[t]``, filter 1
    ``x[t] + x[t+1] + x[t+2]``; a trainable Dense head."""
    inputs = keras.Input((16, 1))
    conv = layers.Conv1D(2, 3, use_bias=False, trainable=False, name="taps")
    h = layers.Flatten(name="flat")(conv(inputs))
    model = keras.Model(inputs, layers.Dense(2, activation="softmax", name="head")(h))
    kernel = np.array([[-1.0, 1.0], [0.0, 1.0], [1.0, 1.0]], "float32")[:, None, :]
    conv.set_weights([kernel])
    return model


def test_handset_conv1d_heatmap_rows_are_the_maps_on_paper(tmp_path: Path) -> None:
    """The step signal (0 for t < 8, 1 after) through frozen_taps, by hand: 14 outputs.

    Filter 0: 1 at t = 6, 7, else 0 → grey 255 there, 0 elsewhere. Filter 1: 0 up to t = 5,
    then 1, 2, then 3 → 0, 85, 170, 255. Rows max(4, ceil(32/2)) = 16 px tall, every step
    ceil(256/14) = 19 px wide: 2 * 16 + 1 = 33 by 14 * 19 = 266, a grey line at row 16.
    """
    x, y = _stepped()
    step = np.zeros((1, 16, 1), "float32")
    step[0, 8:] = 1.0
    writers = [vc.TensorBoardWriter(tmp_path)]
    logger = vc.ActivationLogger(step, writers, layers=["taps"], cmap="gray")
    models.compiled(frozen_taps()).fit(x, y, epochs=2, verbose=0, callbacks=[logger])

    edge = np.repeat([0] * 6 + [255, 255] + [0] * 6, 19)
    ramp = np.repeat([0] * 6 + [85, 170] + [255] * 6, 19)
    expected = np.concatenate(
        [np.tile(edge, (16, 1)), np.full((1, 266), 200), np.tile(ramp, (16, 1))]
    )
    heatmaps = read_events(tmp_path)["activations/taps"]
    assert sorted(heatmaps) == [0, 1, 2]
    for heatmap in heatmaps.values():
        assert heatmap.shape == (33, 266, 3)
        for channel in range(3):
            np.testing.assert_array_equal(heatmap[..., channel], expected)


def test_conv3d_model_trains_and_logs_depth_montages(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    y = np.arange(32) % 2
    x = rng.normal(size=(32, 3, 4, 4, 1)).astype("float32") + y[:, None, None, None, None]
    inputs = keras.Input((3, 4, 4, 1))
    h = layers.Conv3D(2, 3, padding="same", activation="relu", name="conv3")(inputs)
    h = layers.GlobalAveragePooling3D(name="gap")(h)
    model = keras.Model(inputs, layers.Dense(2, activation="softmax", name="probs")(h))
    events = _fit(model, x, y.astype("int64"), tmp_path, x[0])  # one volume (D, H, W, C)

    assert _logged(events) == _pairs(["conv3"], ["gap", "probs"], ["conv3"], 2)
    # 2 channels (rows) x 3 depth slices (columns) of 4x4, enlarged 8x to 32x32.
    assert events["activations/conv3"][2].shape == (2 * 33 - 1, 3 * 33 - 1, 3)
    assert events["mean_activation/conv3"][2].shape == (32, 98, 3)
    assert events["probe/input"][0].shape == (32, 98, 3)
    # Kernels 3x3x3, 1 input: a row per filter (2), 3 depth slices of 3x3 enlarged 11x.
    assert events["filters/conv3"][2].shape == (2 * 34 - 1, 3 * 34 - 1, 3)


def _digits32(digits) -> tuple[np.ndarray, np.ndarray]:
    x, y = digits
    return x[:64].repeat(2, axis=1).repeat(2, axis=2), y[:64]


def _twin(channels_first: bool) -> keras.Model:
    """A frozen 8-filter 3x3 conv over 32x32 digits, BatchNormalization, ReLU, pooling and a
    trainable head; ``channels_first`` everywhere, or channels_last, with the same weights."""
    fmt = "channels_first" if channels_first else "channels_last"
    inputs = keras.Input((1, 32, 32) if channels_first else (32, 32, 1))
    conv = layers.Conv2D(8, 3, data_format=fmt, trainable=False, name="conv")
    h = layers.BatchNormalization(axis=1 if channels_first else -1, trainable=False, name="bn")(
        conv(inputs)
    )
    h = layers.ReLU(name="relu")(h)
    h = layers.MaxPooling2D(data_format=fmt, name="pool")(h)
    h = layers.Flatten(data_format=fmt, name="flat")(h)
    model = keras.Model(inputs, layers.Dense(10, activation="softmax", name="probs")(h))
    kernel = np.random.default_rng(3).normal(size=(3, 3, 1, 8)).astype("float32")
    conv.set_weights([kernel, np.linspace(-0.5, 0.5, 8, dtype="float32")])
    return model


def test_channels_first_logs_what_channels_last_logs(digits, tmp_path: Path) -> None:
    """TensorFlow's CPU ran and trained this channels_first model: Keras lays it out itself.

    8 maps of 30x30 → a 3x3 grid of tiles enlarged 2x to 60: 3 * 61 - 1 = 182 a side.
    """
    x, y = _digits32(digits)
    first = _fit(
        _twin(True), np.moveaxis(x, -1, 1), y, tmp_path / "first", np.moveaxis(x[:1], -1, 1)
    )
    last = _fit(_twin(False), x, y, tmp_path / "last", x[:1])

    assert _logged(first) == _logged(last)
    for layer in ("conv", "bn", "relu", "pool"):
        for step in (0, 1, 2):
            np.testing.assert_array_equal(
                first[f"activations/{layer}"][step], last[f"activations/{layer}"][step]
            )
            np.testing.assert_array_equal(
                first[f"mean_activation/{layer}"][step], last[f"mean_activation/{layer}"][step]
            )
    assert first["activations/conv"][2].shape == (182, 182, 3)
    assert first["activations/pool"][2].shape == (3 * 46 - 1, 3 * 46 - 1, 3)  # 15x15, 3x: 45
    for layer in ("conv", "relu", "pool", "flat", "probs"):
        np.testing.assert_allclose(
            first[f"activation_mean/{layer}"][2],
            last[f"activation_mean/{layer}"][2],
            rtol=1e-4,
            atol=1e-6,
        )
        assert first[f"dead_channels/{layer}"][2] == last[f"dead_channels/{layer}"][2]
    hist_first, hist_last = first["channel_means/relu"][2], last["channel_means/relu"][2]
    np.testing.assert_allclose(hist_first, hist_last, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(first["probe/input"][0], last["probe/input"][0])
    np.testing.assert_array_equal(first["filters/conv"][2], last["filters/conv"][2])


def test_depthwise_kernels_in_a_near_square_grid(digits, tmp_path: Path) -> None:
    x, y = digits
    inputs = keras.Input((16, 16, 1))
    h = layers.Conv2D(12, 3, padding="same", activation="relu", name="conv")(inputs)
    h = layers.DepthwiseConv2D(3, activation="relu", name="dw")(h)
    h = layers.GlobalAveragePooling2D(name="gap")(h)
    model = models.compiled(keras.Model(inputs, layers.Dense(10, activation="softmax")(h)))
    model.fit(
        x[:64],
        y[:64],
        epochs=1,
        verbose=0,
        callbacks=[vc.FilterLogger([vc.TensorBoardWriter(tmp_path)], layers=["dw"])],
    )
    grids = read_events(tmp_path)["filters/dw"]
    # 12 channels → 3 rows x 4 columns of 3x3 kernels enlarged 11x to 33.
    assert sorted(grids) == [0, 1]
    assert {g.shape for g in grids.values()} == {(3 * 34 - 1, 4 * 34 - 1, 3)}


def test_dead_channels_warned_only_when_they_stay_dead(digits, tmp_path: Path, caplog) -> None:
    """A conv and a Dense layer whose bias of -100 kills every unit, and a 1x1-map conv: only the
    conv warns, once, at step 2 (dead at steps 1 and 2), never at step 0."""
    x, y = digits
    dead = keras.initializers.Constant(-100.0)
    inputs = keras.Input((16, 16, 1))
    h = layers.Conv2D(5, 3, activation="relu", bias_initializer=dead, name="doomed")(inputs)
    pix = layers.Conv2D(3, 14, activation="relu", bias_initializer=dead, name="pixel")(h)
    dense = layers.Dense(6, activation="relu", bias_initializer=dead, name="dense")(
        layers.Flatten()(inputs)
    )
    out = layers.Concatenate()([layers.Flatten()(pix), dense, layers.Flatten()(h)])
    model = models.compiled(keras.Model(inputs, layers.Dense(10, activation="softmax")(out)))
    logger = vc.ActivationLogger(
        x[:3], [vc.TensorBoardWriter(tmp_path)], layers=["doomed", "pixel", "dense"]
    )
    with caplog.at_level(logging.WARNING, "vizcallbacks"):
        model.fit(x[:32], y[:32], epochs=2, verbose=0, callbacks=[logger])
    events = read_events(tmp_path)
    warnings = [r.getMessage() for r in caplog.records if "dead" in r.getMessage()]
    assert len(warnings) == 1 and "100% of doomed's channels are dead" in warnings[0]
    assert "up to step 2" in warnings[0]
    # The scalars stay as they were: units zero for every probe, counted at every step.
    assert events["dead_channels/doomed"] == {0: 5.0, 1: 5.0, 2: 5.0}
    assert events["dead_channels/dense"] == {0: 6.0, 1: 6.0, 2: 6.0}
    assert events["dead_channels/pixel"] == {0: 3.0, 1: 3.0, 2: 3.0}
    # The indices are listed for conv-like outputs only, not for Dense units or 1x1 maps.
    assert sorted(events["dead_channel_indices/doomed"]) == [0, 1, 2]
    assert "dead_channel_indices/dense" not in events
    assert "dead_channel_indices/pixel" not in events


def test_one_trained_step_is_not_enough_to_warn(digits, tmp_path: Path, caplog) -> None:
    x, y = digits
    inputs = keras.Input((16, 16, 1))
    h = layers.Conv2D(
        5, 3, activation="relu", bias_initializer=keras.initializers.Constant(-100.0), name="doomed"
    )(inputs)
    model = models.compiled(
        keras.Model(inputs, layers.Dense(10, activation="softmax")(layers.Flatten()(h)))
    )
    logger = vc.ActivationLogger(x[:1], [vc.TensorBoardWriter(tmp_path)], layers=["doomed"])
    with caplog.at_level(logging.WARNING, "vizcallbacks"):
        model.fit(x[:32], y[:32], epochs=1, verbose=0, callbacks=[logger])
    assert "dead" not in caplog.text
    assert read_events(tmp_path)["dead_channels/doomed"] == {0: 5.0, 1: 5.0}


@pytest.mark.parametrize(
    ("shape", "conv", "pool", "size"),
    [
        ((2, 32), layers.Conv1D, layers.GlobalAveragePooling1D, (35, 256, 3)),  # as Conv1D's
        ((1, 3, 4, 4), layers.Conv3D, layers.GlobalAveragePooling3D, (65, 98, 3)),  # as Conv3D's
    ],
)
def test_channels_first_signals_and_volumes(shape, conv, pool, size, tmp_path: Path) -> None:
    """channels_first Conv1D (4 channels x 32 steps) and Conv3D (2 channels x 3 slices of 4x4)
    train on TensorFlow's CPU and draw the pictures their channels_last twins draw."""
    rng = np.random.default_rng(4)
    x = rng.normal(size=(16, *shape)).astype("float32")
    inputs = keras.Input(shape)
    h = conv(
        4 if len(shape) == 2 else 2,
        3,
        padding="same",
        activation="relu",
        name="c",
        data_format="channels_first",
    )(inputs)
    h = pool(data_format="channels_first", name="gap")(h)
    model = models.compiled(keras.Model(inputs, layers.Dense(2, activation="softmax")(h)))
    writers = [vc.TensorBoardWriter(tmp_path)]
    logger = vc.ActivationLogger(x[:1], writers, layers=["c", "gap"])
    model.fit(x, np.arange(16) % 2, epochs=1, verbose=0, callbacks=[logger])
    events = read_events(tmp_path)
    assert {g.shape for g in events["activations/c"].values()} == {size}
    assert sorted(events["channel_means/c"]) == [0, 1] and len(events["channel_means/c"][1]) > 0


def test_filter_patterns_refuse_channels_first_saying_what_works() -> None:
    inputs = keras.Input((1, 16, 16))
    h = keras.layers.Conv2D(4, 3, data_format="channels_first", activation="relu", name="c")(inputs)
    h = keras.layers.GlobalAveragePooling2D(data_format="channels_first")(h)
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(h))
    with pytest.raises(ValueError, match="'c' is channels_first"):
        vc.filter_patterns(model, "c", steps=1)
