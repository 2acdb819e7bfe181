"""The gradient and representation loggers in the dashboard and in the report: a real fit with the
ActivationLogger, GradientLogger (batch-stepped too) and RepresentationLogger, served by a real
``tensorboard`` and opened from disk, driven in headless Chromium.

Under each layer's row its gradient, weight and CKA curves; batch-stepped curves on their own
axis, never on the epoch slider; above the layers the pictures of the whole network, each the
one logged at the slider's step (or the train-end one at every step), byte for byte.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest

import vizcallbacks as vc
from experiments import pages
from tests import models
from tests.events import read_events
from tests.test_dashboard import data_uri, decoded, http_get, loaded_images, needs_browser
from vizcallbacks.__main__ import main as cli

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

EPOCHS = 2
STEPS = list(range(EPOCHS + 1))
PER_LAYER = (
    "gradient_norm",
    "weight_norm",
    "gradient_to_weight",
    "update_ratio",
    "cka_to_initial",
    "cka_to_previous",
)
PER_STEP = ("gradient_flow/all_layers", "cka/layers")
TRAIN_END = ("gradient_flow/evolution", "cka/convergence")


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory, digits: Any) -> tuple[Path, dict[str, Any]]:
    """One run of the three loggers (2 epochs, gradients every 2 batches too) and its events."""
    x, y = digits
    keras.utils.set_random_seed(0)
    root = tmp_path_factory.mktemp("loggers") / "logs" / "run"
    writers = [vc.TensorBoardWriter(root)]
    loggers = [
        vc.ActivationLogger(x[:2], writers),
        vc.GradientLogger((x[:32], y[:32]), writers, every_n_batches=2),
        vc.RepresentationLogger(x[:32], writers),
    ]
    models.compiled(models.functional()).fit(
        x[:128], y[:128], epochs=EPOCHS, batch_size=32, verbose=0, callbacks=loggers
    )
    return root, read_events(root)


def check_loggers(frame: Any, events: dict[str, Any], fetch: Any) -> None:
    """Curves under the layer rows, batch curves apart, and the whole network's pictures."""
    frame.wait_for_selector("section.vc-network")
    assert frame.get_attribute("#vc-step", "max") == str(len(STEPS) - 1)  # epochs, not batches
    for kind in PER_LAYER:
        logged_layers = {t.split("/", 1)[1] for t in events if t.startswith(f"{kind}/")}
        assert logged_layers, kind
        for layer in logged_layers:
            curve = f"section.vc-layer[data-layer='{layer}'] .vc-stat[data-kind='{kind}']"
            assert frame.locator(curve).count() == 1, curve
    batch_layers = {t.split("/", 1)[1] for t in events if t.startswith("batch_weight_norm/")}
    assert batch_layers
    for layer in batch_layers:
        curve = frame.locator(f"section.vc-layer[data-layer='{layer}'] .vc-batch")
        assert curve.count() == 2  # batch_weight_norm and batch_update_ratio
        last = max(events[f"batch_weight_norm/{layer}"])
        assert f"(batch {last})" in curve.first.inner_text()
    frame.locator("#vc-step").focus()
    frame.page.keyboard.press("Home")
    for step in STEPS:
        if step:
            frame.page.keyboard.press("ArrowRight")
        assert frame.inner_text("#vc-step-label") == f"step {step}"
        images = loaded_images(frame, "section.vc-network img[data-tag]")
        assert {image["tag"] for image in images} == {*PER_STEP, *TRAIN_END}
        for image in images:
            shown_step = max(events[image["tag"]]) if image["tag"] in TRAIN_END else step
            np.testing.assert_array_equal(
                decoded(fetch(image["src"])), events[image["tag"]][shown_step], image["tag"]
            )
    assert "gradients" not in frame.eval_on_selector_all(
        "section.vc-layer", "ns => ns.map(n => n.dataset.layer).join(' ')"
    )  # the gradient and weight histograms made no layer


def wait_served(server: pages.TensorBoardServer, events: dict[str, Any]) -> None:
    """Wait until the plugin serves every logged step of the whole network's pictures and every
    per-layer curve (TensorBoard reads the event files in the background)."""
    wanted = {(t, s) for t in (*PER_STEP, *TRAIN_END) for s in events[t]}
    wanted |= {(t, max(events[t])) for t in events if t.split("/")[0] in PER_LAYER}
    deadline = time.monotonic() + 60
    while True:
        index = server.data("vizcallbacks", "run", run="run")
        served = {(s["tag"], step) for s in index["network"] for step in s["steps"]}
        served |= {
            (f"{s['kind']}/{layer['name']}", step)
            for layer in index["layers"]
            for s in layer["stats"]
            for step in s["steps"]
        }
        if wanted <= served:
            return
        assert time.monotonic() < deadline, f"not served: {sorted(wanted - served)}"
        time.sleep(0.5)


def test_plugin_tab_shows_gradient_and_cka_views(logged: tuple[Path, dict[str, Any]]) -> None:
    needs_browser()
    root, events = logged
    with pages.TensorBoardServer(root.parent, dashboard=True) as server, pages.chromium_page() as p:
        wait_served(server, events)
        check_loggers(pages.dashboard_frame(p, server.url), events, http_get)


def test_report_holds_gradient_and_cka_views(
    logged: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    needs_browser()
    root, events = logged
    output = tmp_path / "report.html"
    assert cli(["report", str(root), "-o", str(output)]) == 0
    with pages.chromium_page() as page:
        page.goto(output.as_uri())
        page.wait_for_selector("body[data-vc-ready]")
        check_loggers(page.main_frame, events, data_uri)
