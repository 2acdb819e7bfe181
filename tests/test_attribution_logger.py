"""AttributionLogger through a real fit: event files and a real MLflow server hold every method's
pictures once per (key, step), equal to the notebook functions; arguments refused before the
first step; a failing step skipped while training goes on."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest

import vizcallbacks as vc
from tests import models
from tests.events import read_events, tag_steps
from tests.mlflow_server import IMAGE_FILE
from vizcallbacks.compute.attribution.methods import ALL_METHODS
from vizcallbacks.render.overlay import enlarge, heatmap_image, overlay_heatmap

EPOCHS = 2
NAMES = ("a", "b")


def _expected_images(methods: tuple[str, ...], steps: Iterable[int]) -> set[tuple[str, int]]:
    steps = list(steps)
    per_probe = {
        (f"{kind}/{method}/{name}", step)
        for kind in ("attribution", "attribution_heatmap")
        for method in methods
        for name in NAMES
        for step in steps
    }
    return per_probe | {("attribution_methods/all_probes", step) for step in steps}


def test_logger_writes_every_method_to_event_files(digits, tmp_path: Path) -> None:
    x, y = digits
    probe = x[:2]
    logger = vc.AttributionLogger(
        probe,
        [vc.TensorBoardWriter(tmp_path)],
        probe_names=NAMES,
        class_names=[f"digit {i}" for i in range(10)],
        sanity_check=True,
        alpha=0.5,
    )
    model = models.compiled(models.functional())
    model.fit(x[:64], y[:64], epochs=EPOCHS, batch_size=32, verbose=0, callbacks=[logger])
    events = read_events(tmp_path)
    steps = range(EPOCHS + 1)
    sanity = {(f"attribution_sanity/{m}", step) for m in ALL_METHODS for step in steps}
    assert tag_steps(events) == _expected_images(ALL_METHODS, steps) | sanity
    # The last step is what the notebook functions give for the trained model.
    weights = [np.array(w) for w in model.weights]
    last = {
        "integrated_gradients": vc.integrated_gradients(model, probe),
        "score_cam": vc.score_cam(model, probe),
        "occlusion": vc.occlusion_sensitivity(model, probe),
    }
    for method, heatmaps in last.items():
        for i, name in enumerate(NAMES):
            np.testing.assert_array_equal(
                events[f"attribution/{method}/{name}"][EPOCHS],
                enlarge(overlay_heatmap(probe[i], heatmaps[i], "jet", 0.5)),
            )
            np.testing.assert_array_equal(
                events[f"attribution_heatmap/{method}/{name}"][EPOCHS],
                enlarge(heatmap_image(heatmaps[i], "jet")),
            )
    table = events["attribution_methods/all_probes"][EPOCHS]
    assert table.dtype == np.uint8 and table.shape[1] > 11 * 96  # a column per method + probe
    for method in ALL_METHODS:
        assert -1.0 <= float(events[f"attribution_sanity/{method}"][EPOCHS]) <= 1.0
    logger.compute()  # the sanity check puts the trained weights back exactly
    assert all(np.array_equal(a, np.array(b)) for a, b in zip(weights, model.weights, strict=True))


def test_only_the_side_by_side_picture_and_one_owner_per_writer(digits, tmp_path: Path) -> None:
    x, y = digits
    writers = [vc.TensorBoardWriter(tmp_path)]
    loggers = [vc.AttributionLogger(x[:2], writers, ["saliency", "layer_cam"], individual=False)]
    model = models.compiled(models.sequential_without_input())  # built by the logger
    model.fit(x[:32], y[:32], epochs=1, verbose=0, callbacks=loggers)
    assert tag_steps(read_events(tmp_path)) == {
        ("attribution_methods/all_probes", s) for s in (0, 1)
    }
    loggers.append(vc.AttributionLogger(x[:2], writers, ["saliency"], individual=False))
    with pytest.raises(ValueError, match="attribution_methods"):
        model.fit(x[:32], y[:32], epochs=1, verbose=0, callbacks=loggers)


def test_methods_with_options_and_every_n_epochs(digits, tmp_path: Path) -> None:
    x, y = digits
    methods = {"integrated_gradients": {"steps": 8}, "occlusion": {"patch": 8, "stride": 4}}
    logger = vc.AttributionLogger(
        x[:2], [vc.TensorBoardWriter(tmp_path)], methods, probe_names=NAMES, every_n_epochs=2
    )
    model = models.compiled(models.nested())
    model.fit(x[:64], y[:64], epochs=3, batch_size=32, verbose=0, callbacks=[logger])
    events = read_events(tmp_path)
    assert tag_steps(events) == _expected_images(tuple(methods), (0, 2, 3))
    np.testing.assert_array_equal(
        events["attribution_heatmap/occlusion/b"][3],
        enlarge(heatmap_image(vc.occlusion_sensitivity(model, x[:2], patch=8, stride=4)[1])),
    )


def test_bad_arguments_are_refused_before_training(digits, tmp_path: Path) -> None:
    x, y = digits
    writers = [vc.TensorBoardWriter(tmp_path)]
    cases = [
        ({"methods": ["saliency", "gradcam"]}, ValueError, "unknown method 'gradcam'"),
        ({"methods": {"occlusion": {"size": 3}}}, ValueError, r"unknown option\(s\) \['size'\]"),
        ({"methods": {"occlusion": {"patch": 0}}}, ValueError, r"\['patch'\] must be ≥ 1"),
        ({"methods": {"score_cam": {"top_k": 2.5}}}, TypeError, "must be an integer"),
        ({"methods": "saliency"}, TypeError, "methods must be a sequence"),
        ({"methods": []}, ValueError, "methods is empty"),
        ({"sanity_check": "yes"}, TypeError, "sanity_check must be True or False"),
        ({"individual": 0}, TypeError, "individual must be True or False"),
        ({"alpha": 2}, ValueError, "alpha must be a number"),
        ({"class_index": "cat"}, TypeError, "class_index must be None"),
    ]
    for kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            vc.AttributionLogger(x[:2], writers, **kwargs)
    model = models.compiled(models.functional())
    for kwargs, message in [
        ({"class_names": ["a", "b"]}, r"class_names needs one name per class \(10\)"),
        ({"class_index": 12}, r"class_index must lie in 0\.\.9"),
    ]:
        logger = vc.AttributionLogger(x[:2], writers, ["saliency"], **kwargs)
        with pytest.raises(ValueError, match=message):
            model.fit(x[:32], y[:32], epochs=1, verbose=0, callbacks=[logger])


class _Flaky(vc.AttributionLogger):
    """Fails on its second computation: setup's trial passes (and is step 0), step 1 fails."""

    calls = 0

    def compute(self):  # type: ignore[no-untyped-def]
        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("boom")
        return super().compute()


def test_a_failing_step_is_skipped_and_training_goes_on(digits, tmp_path: Path, caplog) -> None:
    x, y = digits
    logger = _Flaky(x[:2], [vc.TensorBoardWriter(tmp_path)], ["saliency"])
    model = models.compiled(models.functional())
    with caplog.at_level(logging.WARNING, "vizcallbacks"):
        history = model.fit(x[:32], y[:32], epochs=2, verbose=0, callbacks=[logger])
    assert len(history.history["loss"]) == 2
    assert "_Flaky skipped a step (RuntimeError: boom)" in caplog.text
    steps = {s for t, s in tag_steps(read_events(tmp_path)) if t.startswith("attribution/")}
    assert steps == {0, 2}


@pytest.mark.e2e
@pytest.mark.timeout(240)
def test_every_method_once_per_key_and_step_on_a_real_mlflow_server(
    digits, tmp_path: Path, mlflow_server, no_mlflow_env
) -> None:
    from mlflow import MlflowClient

    x, y = digits
    experiment = f"attribution-{uuid.uuid4().hex[:8]}"
    board = vc.TensorBoardWriter(tmp_path / "logs")
    mlflow_writer = vc.MLflowWriter(
        tracking_uri=mlflow_server.uri, experiment_name=experiment, spool_dir=tmp_path / "spool"
    )
    logger = vc.AttributionLogger(
        x[:2], [board, mlflow_writer], probe_names=NAMES, sanity_check=True
    )
    model = models.compiled(models.functional())
    model.fit(x[:64], y[:64], epochs=EPOCHS, batch_size=32, verbose=0, callbacks=[logger])

    expected = _expected_images(ALL_METHODS, range(EPOCHS + 1))
    events = read_events(tmp_path / "logs")
    assert {(t, s) for t, s in tag_steps(events) if not t.startswith("attribution_sanity")} == (
        expected
    )
    client = MlflowClient(mlflow_server.uri)
    [run] = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    assert run.info.status == "FINISHED"
    logged = []
    for info in client.list_artifacts(run.info.run_id, "images"):
        match = IMAGE_FILE.match(info.path)
        if match:
            logged.append((match["key"].replace("~", "/"), int(match["step"])))
    assert len(logged) == len(set(logged))  # each (key, step) exactly once
    assert set(logged) == expected
    for method in ALL_METHODS:
        history = client.get_metric_history(run.info.run_id, f"attribution_sanity/{method}")
        assert sorted(m.step for m in history) == list(range(EPOCHS + 1))


@pytest.mark.slow
def test_fashion_experiment_logs_every_method_and_its_sanity(tmp_path: Path) -> None:
    from experiments import fashion_cnn
    from experiments.datasets import FASHION_CLASSES

    fashion_cnn.main(
        ["--epochs", "1", "--max-samples", "64", "--no-mlflow", "--log-dir", str(tmp_path)]
    )
    logged = tag_steps(read_events(tmp_path))
    probes = ["bag_2000", *FASHION_CLASSES]
    expected = {
        (f"{kind}/{method}/{probe}", step)
        for kind in ("attribution", "attribution_heatmap")
        for method in ALL_METHODS
        for probe in probes
        for step in (0, 1)
    }
    expected |= {("attribution_methods/all_probes", s) for s in (0, 1)}
    expected |= {(f"attribution_sanity/{m}", s) for m in ALL_METHODS for s in (0, 1)}
    assert expected <= logged
