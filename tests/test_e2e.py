"""What a user sees: a real run served by real ``tensorboard`` and ``mlflow server`` processes,
read back through their HTTP data endpoints and rendered by headless Chromium.

Each test trains the tiny functional CNN for two epochs on real digits (steps 0, 1, 2), then
checks that every tag is served with one entry per logged step and that the pages really draw our
images (decoded, non-zero natural size). Screenshots land in the test's tmp dir (and in
``$VIZ_DOCS_DIR`` when set).
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import vizcallbacks as vc
from experiments import pages
from tests import models
from tests.events import read_events

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(240)]

EPOCHS = 2
STEPS = list(range(EPOCHS + 1))
SPATIAL = ["conv_a", "bn_a", "relu_a", "pool_a", "conv_b"]  # 4-D outputs of models.functional
DENSE = ["gap", "probs"]
CONVS = ["conv_a", "conv_b"]
STATISTICS = ("activation_mean", "activation_std", "activation_zero_fraction")
DRIFT = ("filter_drift", "filter_drift_from_init")

# Every image tag and the steps it has: grids each step, the probe once, strips at train end.
IMAGE_STEPS: dict[str, list[int]] = {
    **{f"activations/{layer}": STEPS for layer in SPATIAL},
    **{f"mean_activation/{layer}": STEPS for layer in SPATIAL},
    **{f"filters/{layer}": STEPS for layer in CONVS},
    **{f"evolution/{layer}": [EPOCHS] for layer in SPATIAL},
    **{f"filter_evolution/{layer}": [EPOCHS] for layer in CONVS},
    "probe/input": [0],
}
SCALAR_STEPS: dict[str, list[int]] = {
    **{f"{kind}/{layer}": STEPS for kind in STATISTICS for layer in SPATIAL + DENSE},
    **{f"{kind}/{layer}": STEPS[1:] for kind in DRIFT for layer in CONVS},
}


def needs_browser() -> None:
    reason = pages.browser_missing()
    if reason:
        pytest.skip(f"no browser check: {reason}")


def fit(digits: tuple[np.ndarray, np.ndarray], writers: list[Any]) -> None:
    x, y = digits
    loggers = [vc.ActivationLogger(x[0], writers), vc.FilterLogger(writers)]
    models.compiled(models.functional()).fit(
        x[:64], y[:64], epochs=EPOCHS, batch_size=32, verbose=0, callbacks=loggers
    )


def docs_dir() -> str | None:
    return os.environ.get("VIZ_DOCS_DIR") or None


def test_tensorboard_serves_and_draws_every_tag(digits: Any, tmp_path: Path) -> None:
    needs_browser()
    log_dir = tmp_path / "logs"
    fit(digits, [vc.TensorBoardWriter(log_dir)])
    on_disk = read_events(log_dir)

    with pages.TensorBoardServer(log_dir) as server:
        # The data endpoints: every tag, one entry per logged step, as in the event files.
        served_images = server.wait_for_tags("images", IMAGE_STEPS)
        for tag, steps in IMAGE_STEPS.items():
            assert server.image_steps(tag) == steps, tag
            assert served_images[tag]["samples"] == 1, tag  # one probe: one image per step
        for tag in served_images:
            assert server.image_steps(tag) == sorted(on_disk[tag]), tag
        served_scalars = server.wait_for_tags("scalars", SCALAR_STEPS)
        for tag, steps in SCALAR_STEPS.items():
            assert server.scalar_steps(tag) == steps, tag
        for tag in served_scalars:
            assert server.scalar_steps(tag) == sorted(on_disk[tag]), tag
        last = server.image_bytes("activations/conv_a", EPOCHS)
        assert last.startswith(b"\x89PNG")

        # The Images dashboard: a card per tag, each showing a decoded image of its real size.
        with pages.chromium_page() as page:
            # A family at a time, through the tag filter (a regex, kept in the URL): one open
            # group of cards, not paged, whatever TensorBoard's default grouping and paging.
            sizes: dict[str, tuple[int, int]] = {}
            for family in sorted({tag.split("/")[0] for tag in IMAGE_STEPS}):
                wanted = [tag for tag in IMAGE_STEPS if tag.split("/")[0] == family]
                pages.tensorboard_open_images(page, server.url, tag_filter=f"^{family}/")
                sizes.update(pages.tensorboard_rendered_images(page, wanted))
            pages.tensorboard_open_images(page, server.url, tag_filter="^activations/")
            pages.tensorboard_rendered_images(page, ["activations/bn_a", "activations/conv_a"])
            shot = pages.screenshot(page, tmp_path / "tensorboard_images.png", also_to=docs_dir())
    assert set(sizes) == set(IMAGE_STEPS), sorted(set(IMAGE_STEPS) - set(sizes))
    for tag, (width, height) in sizes.items():
        array = on_disk[tag][max(on_disk[tag])]  # the dashboard shows the last step first
        assert (width, height) == (array.shape[1], array.shape[0]), tag
    assert shot.stat().st_size > 10_000  # a picture, not a blank page


def test_mlflow_run_page_lists_images_and_charts(
    digits: Any,
    tmp_path: Path,
    mlflow_server: Any,
    monkeypatch: pytest.MonkeyPatch,
    record_property: Any,
) -> None:
    needs_browser()
    from mlflow import MlflowClient

    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.delenv(name, raising=False)
    experiment = f"e2e-{uuid.uuid4().hex[:8]}"
    fit(digits, [vc.MLflowWriter(tracking_uri=mlflow_server.uri, experiment_name=experiment)])

    client = MlflowClient(mlflow_server.uri)
    found = client.get_experiment_by_name(experiment)
    assert found is not None
    (run,) = client.search_runs([found.experiment_id])
    for layer in SPATIAL + DENSE:
        history = client.get_metric_history(run.info.run_id, f"activation_mean/{layer}")
        assert sorted(m.step for m in history) == STEPS, layer

    image_keys = [f"activations/{layer}" for layer in CONVS] + ["filters/conv_b", "probe/input"]
    chart_keys = [f"activation_mean/{layer}" for layer in SPATIAL + DENSE]
    with pages.chromium_page(init_script=pages.MLFLOW_UI_STATE) as page:
        pages.mlflow_open_run(page, mlflow_server.uri, found.experiment_id, run.info.run_id)
        points = pages.mlflow_chart_points(page, chart_keys, search="activation_mean/")
        pages.screenshot(page, tmp_path / "mlflow_charts.png", also_to=docs_dir())
        cards = pages.mlflow_image_cards(page, image_keys)
        pages.mlflow_search(page, pages.MATCHES_NO_METRIC)
        pages.screenshot(page, tmp_path / "mlflow_images.png", also_to=docs_dir())
    assert points == dict.fromkeys(chart_keys, len(STEPS)), points
    assert set(cards) == set(image_keys), sorted(set(image_keys) - set(cards))
    for key, card in cards.items():
        assert card.width > 0 and card.height > 0, (key, card)
        # MLflow lists every run parameter above the image in a fixed-height card; the writer
        # logs its options as tags instead, so the card shows most of the picture.
        assert card.visible >= 0.75, (key, card)
        record_property(f"mlflow_visible_fraction/{key}", round(card.visible, 2))
