"""Beyond the tutorials: filter drift, dead channels, evolution strips, class comparison."""

from __future__ import annotations

import io
import logging
from pathlib import Path

import keras
import numpy as np
import pytest

import vizcallbacks as vc
from tests import models
from tests.events import read_events
from vizcallbacks.compute.filters import relative_change


def test_relative_change_by_hand() -> None:
    reference = np.array([[3.0, 0.0], [0.0, 4.0]])  # norm 5
    assert relative_change(reference, reference) == 0.0
    assert relative_change(reference * 1.2, reference) == pytest.approx(0.2)
    assert relative_change(np.zeros(2), np.zeros(2)) == 0.0


def test_frozen_layer_has_zero_drift_and_trained_layer_moves(digits, tmp_path: Path) -> None:
    x, y = digits
    model = models.functional()
    model.get_layer("conv_a").trainable = False
    before = np.asarray(model.get_layer("conv_b").kernel).copy()
    models.compiled(model).fit(
        x[:64],
        y[:64],
        epochs=3,
        verbose=0,
        callbacks=[vc.FilterLogger([vc.TensorBoardWriter(tmp_path)])],
    )
    events = read_events(tmp_path)
    assert sorted(events["filter_drift/conv_a"]) == [1, 2, 3]
    assert all(v == 0.0 for v in events["filter_drift/conv_a"].values())
    assert events["filter_drift_from_init/conv_a"][3] == 0.0
    after = np.asarray(model.get_layer("conv_b").kernel)
    expected = np.linalg.norm(after - before) / np.linalg.norm(before)
    np.testing.assert_allclose(events["filter_drift_from_init/conv_b"][3], expected, rtol=1e-5)
    assert events["filter_drift/conv_b"][1] > 0


def test_bias_of_minus_100_kills_every_channel(digits, tmp_path: Path, caplog) -> None:
    x, y = digits
    inputs = keras.Input((16, 16, 1))
    conv = keras.layers.Conv2D(
        5, 3, activation="relu", name="doomed", bias_initializer=keras.initializers.Constant(-100.0)
    )
    h = conv(inputs)
    outputs = keras.layers.Dense(10, activation="softmax")(keras.layers.Flatten()(h))
    model = models.compiled(keras.Model(inputs, outputs))
    logger = vc.ActivationLogger(x[:3], [vc.TensorBoardWriter(tmp_path)], layers=["doomed"])
    with caplog.at_level(logging.WARNING, "vizcallbacks"):
        model.fit(x[:32], y[:32], epochs=2, verbose=0, callbacks=[logger])
    events = read_events(tmp_path)
    assert events["dead_channels/doomed"] == {0: 5.0, 1: 5.0, 2: 5.0}
    assert events["dead_channel_fraction/doomed"][2] == 1.0
    caption = events["dead_channel_indices/doomed"][2].item().decode()
    assert caption.startswith("5 of the channels are zero for every probe: 0, 1, 2, 3, 4")
    assert caplog.text.count("100% of doomed's channels are dead") == 1


def test_class_comparison_grid_by_hand() -> None:
    from vizcallbacks.render.compare import class_comparison_grid

    inputs = np.array([[[0.0, 1.0], [0.0, 1.0]], [[1.0, 0.0], [1.0, 0.0]]])  # 2 probes, 2x2
    layer = np.array([[[5.0]], [[5.0]]])  # 1x1 maps: constant → black
    grid = class_comparison_grid([inputs, layer], tile_size=4, cmap="gray")
    assert grid.shape == (9, 9, 3)  # 2 rows x 2 columns of 4x4 tiles, 1-pixel separators
    np.testing.assert_array_equal(grid[:4, :4, 0], [[0, 0, 255, 255]] * 4)
    np.testing.assert_array_equal(grid[5:, :4, 0], [[255, 255, 0, 0]] * 4)
    assert (grid[:4, 5:] == 0).all() and (grid[5:, 5:] == 0).all()


def test_activation_table_highlights_positive_cells() -> None:
    from vizcallbacks.render.table import activation_table_html, activation_table_markdown

    values = np.array([[1.5, -2.0], [0.0, 3.25]])
    page = activation_table_html(values, title="conv <a> ch 0")
    assert page.count('<td class="pos">') == 2 and "<td>-2.00</td>" in page
    assert "conv &lt;a&gt; ch 0" in page
    assert activation_table_markdown(values).splitlines()[2:] == [
        "| **1.50** | -2.00 |",
        "| 0.00 | **3.25** |",
    ]


def test_logger_compares_classes_and_logs_a_table(digits, tmp_path: Path) -> None:
    x, y = digits
    probes = np.stack([x[np.flatnonzero(y == 0)[0]], x[np.flatnonzero(y == 7)[0]]])
    model = models.compiled(models.functional())
    logger = vc.ActivationLogger(
        probes,
        [vc.TensorBoardWriter(tmp_path)],
        probe_names=["zero", "seven"],
        compare_channel=2,
        table=("conv_b", 1),
    )
    model.fit(x[:32], y[:32], epochs=1, verbose=0, callbacks=[logger])
    events = read_events(tmp_path)
    grid = events["class_comparison/channel_2"][1]
    # Input + 5 layers with ≥ 3 channels (conv_a, bn_a, relu_a, pool_a, conv_b): 6 columns, 2 rows.
    assert grid.shape == (2 * 65 - 1, 6 * 65 - 1, 3)
    table = events["activation_table/conv_b"][1].item().decode()
    conv_b = vc.layer_activations(model, probes[:1], ["conv_b"])["conv_b"][0, :, :, 1]
    assert len(table.splitlines()) == 2 + conv_b.shape[0]
    assert table.count("**") == 2 * int((conv_b > 0).sum())
    page = (tmp_path / "files" / "activation_table" / "conv_b" / "step_000001.html").read_text()
    assert page.count('<td class="pos">') == int((conv_b > 0).sum())
    assert page.count("<tr>") >= conv_b.shape[0]


def test_compare_channel_needs_two_probes(digits, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least two probe images"):
        vc.ActivationLogger(digits[0][0], [vc.TensorBoardWriter(tmp_path)], compare_channel=0)


def test_evolution_strip_has_a_row_per_logged_step(digits, tmp_path: Path) -> None:
    x, y = digits
    writers = [vc.TensorBoardWriter(tmp_path)]
    model = models.compiled(models.functional())
    model.fit(
        x[:32],
        y[:32],
        epochs=4,
        verbose=0,
        callbacks=[
            vc.ActivationLogger(x[0], writers, layers=["conv_b"]),
            vc.FilterLogger(writers),
        ],
    )
    events = read_events(tmp_path)
    strip = events["evolution/conv_b"][4]
    assert strip.shape == (5 * 33 - 1, 8 * 33 - 1, 3)  # 5 steps x 8 channels of 32x32 tiles
    filters = events["filter_evolution/conv_a"][4]
    assert filters.shape == (5 * 33 - 1, 4 * 33 - 1, 3)
    from PIL import Image

    with Image.open(tmp_path / "files" / "evolution" / "conv_b.gif") as gif:
        assert gif.n_frames == 5


def test_evolution_recorder_stays_bounded() -> None:
    from vizcallbacks.render.evolution import EvolutionRecorder

    recorder = EvolutionRecorder(max_steps=8, frame_size=16)
    for step in range(100):
        recorder.add(step, np.full((4, 10, 3), step, np.uint8), np.zeros((64, 64, 3), np.uint8))
    assert 4 <= len(recorder) <= 8 and recorder.steps[0] == 0 and recorder.steps[-1] == 99
    assert recorder.strip().shape == (len(recorder) * 5 - 1, 10, 3)
    assert [int(row[0, 0, 0]) for row in recorder.rows()] == recorder.steps
    from PIL import Image

    with Image.open(io.BytesIO(recorder.gif())) as gif:  # frames shrunk to frame_size
        assert gif.size == (16, 16) and gif.n_frames == len(recorder)


def test_evolution_gif_frames_come_back_in_order_with_their_colours() -> None:
    from PIL import Image

    from vizcallbacks.render.colormap import colorize
    from vizcallbacks.render.evolution import EvolutionRecorder

    recorder = EvolutionRecorder(frame_size=64)
    ramps = [np.linspace(0, 1, 48 * 40).reshape(48, 40) ** p for p in (1.0, 2.0, 0.5)]
    frames = [colorize(r.astype(np.float32), "viridis") for r in ramps]
    frames.append(np.full((30, 20, 3), (255, 0, 255), np.uint8))  # a smaller, other-coloured one
    for step, frame in enumerate(frames):
        recorder.add(step, frame[:4], frame)
    with Image.open(io.BytesIO(recorder.gif())) as gif:
        assert gif.n_frames == 4
        for index, frame in enumerate(frames):
            gif.seek(index)
            back = np.asarray(gif.convert("RGB"), dtype=int)[: frame.shape[0], : frame.shape[1]]
            error = np.abs(back - frame)  # 256 colours per frame, no dithering
            assert error.max() <= 24 and error.mean() <= 4, (index, error.max(), error.mean())


def test_evolution_memory_is_shared_by_all_layers_of_a_logger() -> None:
    from vizcallbacks.render.evolution import EVOLUTION_BUDGET, steps_kept

    assert steps_kept(7) == 64  # a small CNN keeps every step up to 64
    assert steps_kept(175) == 8  # ResNet50's every layer: fewer steps each, never fewer than 8
    per_step = 256 * 256 * 3 + 16 * 32 * 32 * 3  # the largest frame and a row, in bytes
    for layers in (10, 20, 40):
        kept = steps_kept(layers)
        assert 8 < kept < 64 and layers * kept * per_step <= EVOLUTION_BUDGET, (layers, kept)
