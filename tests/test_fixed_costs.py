"""Fixed costs: step 0 eagerly, the recorded pass traced in the background, evolution kept small."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

import vizcallbacks as vc
from tests import models
from tests.events import read_events, tag_steps
from vizcallbacks.compute.backend import backend


@pytest.mark.skipif(backend() != "tensorflow", reason="only TensorFlow traces in the background")
def test_trace_waits_for_training_and_step_zero_is_the_untrained_network(
    digits, tmp_path: Path
) -> None:
    x, y = digits
    model = models.compiled(models.functional())
    untrained = vc.layer_activations(model, x[:2], ["conv_b"])["conv_b"]
    logger = vc.ActivationLogger(x[:2], [vc.TensorBoardWriter(tmp_path)], layers=["conv_b"])
    logger.set_model(model)
    logger.set_params({"epochs": 2, "steps": 1, "verbose": 0})
    logger.on_train_begin()  # setup and step 0: eager, nothing traced yet
    assert logger._extractor._forward.experimental_get_tracing_count() == 0
    logger.on_epoch_begin(0)  # the trace goes to the background thread now
    model.fit(x[:64], y[:64], epochs=1, verbose=0)  # training while it traces
    for epoch in range(2):
        logger.on_epoch_end(epoch)
        logger.on_epoch_begin(epoch + 1)
    logger.on_train_end()
    assert logger._extractor._forward.experimental_get_tracing_count() == 1
    events = read_events(tmp_path)
    assert {s for t, s in tag_steps(events) if t == "activation_mean/conv_b"} == {0, 1, 2}
    assert events["activation_mean/conv_b"][0] == pytest.approx(float(untrained.mean()), 1e-5)
    trained = vc.layer_activations(model, x[:2], ["conv_b"])["conv_b"]
    assert events["activation_mean/conv_b"][2] == pytest.approx(float(trained.mean()), 1e-5)
    assert abs(trained.mean() - untrained.mean()) > 1e-4  # training moved it: the test can fail


def test_evolution_recorder_keeps_its_steps_compressed() -> None:
    from PIL import Image

    from vizcallbacks.render.colormap import colorize
    from vizcallbacks.render.evolution import EvolutionRecorder

    recorder = EvolutionRecorder(max_steps=64)
    rng = np.random.default_rng(0)
    raw = 0
    for step in range(64):
        maps = rng.random((8, 8), dtype=np.float32).repeat(32, 0).repeat(32, 1)  # 256 x 256
        frame = colorize(maps, "viridis")
        row = colorize(maps[:32, :], "viridis")
        recorder.add(step, row, frame)
        raw += frame.nbytes + row.nbytes
    kept = sum(len(d) for _, d in recorder._frames) + sum(len(d) for _, d in recorder._rows)
    assert kept < raw / 20, (kept, raw)
    assert recorder.rows()[5].shape == (32, 256, 3)
    with Image.open(io.BytesIO(recorder.gif())) as gif:
        assert gif.n_frames == 64 and gif.size == (256, 256)
        assert gif.info["duration"] == 500 and gif.info["loop"] == 0


def test_every_step_logged_once_with_a_second_fit(digits, tmp_path: Path) -> None:
    x, y = digits
    model = models.compiled(models.functional())
    writers = [vc.TensorBoardWriter(tmp_path)]
    loggers = [vc.ActivationLogger(x[:1], writers), vc.GradCAMLogger(x[:1], writers)]
    model.fit(x[:32], y[:32], epochs=2, verbose=0, callbacks=loggers)
    model.fit(x[:32], y[:32], epochs=2, verbose=0, callbacks=loggers)
    events = read_events(tmp_path)
    assert {s for t, s in tag_steps(events) if t.startswith("activation_mean/")} == set(range(5))
    assert {s for t, s in tag_steps(events) if t.startswith("gradcam/")} == set(range(5))
