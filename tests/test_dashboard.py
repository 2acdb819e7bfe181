"""The dashboard as a user sees it: three real runs served by a real ``tensorboard`` with the
plugin, and the one-file report opened from disk, both driven in headless Chromium.

Each view is checked against the event files: every logged layer in network order; at each step
of the slider every image the page shows is the one logged at that step (the bytes served, or the
``data:`` URI inlined, decoded and compared); the layer view shows every step.
"""

from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from PIL import Image

import vizcallbacks as vc
from experiments import pages
from tests import models
from tests.events import read_events
from tests.test_dashboard_model import report_data
from vizcallbacks.__main__ import main as cli
from vizcallbacks.dashboard import REPORT_ARTIFACT
from vizcallbacks.records import Image as ImageRecord

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

EPOCHS = 3
STEPS = list(range(EPOCHS + 1))
PROBES = ["zero", "one"]
RUNS = ["run_a", "run_b", "run_c"]


def needs_browser() -> None:
    reason = pages.browser_missing()
    if reason:
        pytest.skip(f"no browser check: {reason}")


def fit(digits: Any, log_dir: Path, epochs: int, writers: list[Any] | None = None) -> list[str]:
    """Train the tiny functional CNN with the three loggers; the layers it logged, in order."""
    x, y = digits
    keras.utils.set_random_seed(0)  # a module fixture runs before the autouse seed
    writers = writers or [vc.TensorBoardWriter(log_dir)]
    activations = vc.ActivationLogger(x[:2], writers, probe_names=PROBES)
    loggers = [
        activations,
        vc.FilterLogger(writers),
        vc.GradCAMLogger(x[:2], writers, probe_names=PROBES),
    ]
    models.compiled(models.functional()).fit(
        x[:64], y[:64], epochs=epochs, batch_size=32, verbose=0, callbacks=loggers
    )
    return list(activations.run_params()["layers_logged"])


@pytest.fixture(scope="module")
def logdir(tmp_path_factory: pytest.TempPathFactory, digits: Any) -> tuple[Path, list[str]]:
    """Three runs in one log directory: ``run_a`` (3 epochs), ``run_b`` (2), ``run_c`` (1)."""
    root = tmp_path_factory.mktemp("dashboard") / "logs"
    layers = fit(digits, root / "run_a", EPOCHS)
    fit(digits, root / "run_b", EPOCHS - 1)
    fit(digits, root / "run_c", 1)
    return root, layers


def decoded(data: bytes) -> np.ndarray:
    with Image.open(io.BytesIO(data)) as image:
        return np.asarray(image)


def loaded_images(frame: Any, selector: str) -> list[dict[str, Any]]:
    """Scroll every shown image under ``selector`` into view (they load lazily), wait until each
    is decoded, and return its tag, step and source."""
    return frame.evaluate(
        """async (selector) => {
            const images = [...document.querySelectorAll(selector)].filter((i) => !i.hidden);
            for (const img of images) {
                img.scrollIntoView();
                for (let t = 0; t < 200 && !(img.complete && img.naturalWidth); t++)
                    await new Promise((r) => setTimeout(r, 25));
            }
            return images.map((i) => ({tag: i.dataset.tag, step: Number(i.dataset.step),
                src: i.src, width: i.naturalWidth}));
        }""",
        selector,
    )


def check_views(frame: Any, events: dict[str, Any], layers: list[str], fetch: Any) -> None:
    """The network view (layers, slider, images) and the layer view (every step) of run_a."""
    frame.wait_for_selector("section.vc-layer")
    shown = frame.eval_on_selector_all("section.vc-layer", "ns => ns.map(n => n.dataset.layer)")
    assert shown == layers
    options = frame.eval_on_selector_all("#vc-probe option", "os => os.map(o => o.value)")
    assert options == PROBES  # in the order given to the logger
    frame.select_option("#vc-probe", "zero")
    slider = frame.locator("#vc-step")
    slider.focus()
    frame.page.keyboard.press("Home")
    for step in STEPS:
        if step:
            frame.page.keyboard.press("ArrowRight")
        assert frame.inner_text("#vc-step-label") == f"step {step}"
        images = loaded_images(frame, "section.vc-layer img[data-tag]")
        tags = {image["tag"] for image in images}
        assert {f"activations/{layer}/zero" for layer in ("conv_a", "pool_a", "conv_b")} <= tags
        assert {"filters/conv_a", "filters/conv_b", "gradcam/conv_b/zero"} <= tags
        for layer in layers:  # dead channels named (a count for Dense-like outputs)
            shown = frame.inner_text(f"section.vc-layer[data-layer='{layer}'] .vc-dead")
            assert shown == dead_text(events, layer, step), layer
        for image in images:
            assert image["step"] == step and image["width"] > 0, image
            served = decoded(fetch(image["src"]))
            np.testing.assert_array_equal(served, events[image["tag"]][step], err_msg=image["tag"])
    frame.click("#vc-tab-layer")
    frame.select_option("#vc-layer", "conv_a")
    strip = "section.vc-strip[data-kind='activations'][data-run='0']"
    steps = frame.eval_on_selector_all(f"{strip} figure", "fs => fs.map(f => +f.dataset.step)")
    assert steps == STEPS
    for image in loaded_images(frame, f"{strip} img"):
        np.testing.assert_array_equal(
            decoded(fetch(image["src"])), events["activations/conv_a/zero"][image["step"]]
        )
    assert frame.locator("section.vc-strip[data-kind='filters']").count() == 1
    assert frame.locator(".vc-layer-stats .vc-stat[data-kind='filter_drift']").count() == 1
    frame.click("#vc-tab-network")


def check_runs_in_rows(frame: Any, root: Path, fetch: Any) -> None:
    """run_a, run_b and run_c shown at once at step 1: a row each in a layer's section, named in
    its colour, each showing its own run's picture; every run's curve on one plot."""
    row = "section.vc-layer[data-layer='conv_a'] .vc-columns.vc-rows"
    frame.wait_for_selector(f"{row} .vc-images[data-run='2']")
    labels = frame.eval_on_selector_all(
        f"{row} .vc-run-label", "ns => ns.map(n => [n.textContent, n.style.color])"
    )
    assert [name for name, _ in labels] == RUNS
    strokes = frame.eval_on_selector_all(
        "section.vc-layer[data-layer='conv_a'] .vc-stat[data-kind='activation_mean'] polyline",
        "ls => ls.map(l => l.getAttribute('stroke'))",
    )
    assert len(strokes) == len(set(strokes)) == len({color for _, color in labels}) == 3
    frame.locator("#vc-step").focus()
    frame.page.keyboard.press("Home")
    frame.page.keyboard.press("ArrowRight")
    assert frame.inner_text("#vc-step-label") == "step 1"
    for i, run in enumerate(RUNS):
        selector = f"{row} .vc-images[data-run='{i}'] img[data-tag='activations/conv_a/zero']"
        (image,) = loaded_images(frame, selector)
        expected = read_events(root / run)["activations/conv_a/zero"][1]
        np.testing.assert_array_equal(decoded(fetch(image["src"])), expected, err_msg=run)


def dead_text(events: dict[str, Any], layer: str, step: int) -> str:
    """What the network view should say of ``layer``'s dead channels at ``step``."""
    named = events.get(f"dead_channel_indices/{layer}", {}).get(step)
    if named is not None:
        return bytes(named.item()).decode("utf-8")
    count = int(events[f"dead_channels/{layer}"][step])
    units = "unit is" if count == 1 else "units are"
    return f"{count} {units} zero for every probe (counted, not flagged)" if count else ""


def http_get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        return bytes(response.read())


def data_uri(url: str) -> bytes:
    assert url.startswith("data:image/png;base64,"), url[:40]
    return base64.b64decode(url.split(",", 1)[1])


def wait_loaded(server: pages.TensorBoardServer, run: str, events: dict[str, Any]) -> None:
    """Wait until the plugin serves every step of ``run``'s maps, filters, Grad-CAMs and probes
    that its event files hold (TensorBoard reads them in the background)."""
    kinds = ("activations", "mean_activation", "filters", "gradcam", "probe")
    wanted = {(t, s) for t, steps in events.items() for s in steps if t.split("/")[0] in kinds}
    deadline = time.monotonic() + 60
    while True:
        index = server.data("vizcallbacks", "run", run=run)
        series = [s for layer in index["layers"] for s in layer["images"]] + index["inputs"]
        if wanted <= {(s["tag"], step) for s in series for step in s["steps"]}:
            return
        assert time.monotonic() < deadline, "TensorBoard did not load the whole run"
        time.sleep(0.5)


def test_plugin_tab_network_and_layer_views(logdir: tuple[Path, list[str]], tmp_path: Path) -> None:
    needs_browser()
    root, layers = logdir
    events = read_events(root / "run_a")
    with pages.TensorBoardServer(root, dashboard=True) as server, pages.chromium_page() as page:
        assert pages.get_json(f"{server.url}/data/plugins_listing")["vizcallbacks"]["enabled"]
        assert server.data("vizcallbacks", "runs") == RUNS  # not Keras' own runs
        wait_loaded(server, "run_a", events)
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        plugin = pages.dashboard_frame(page, server.url)  # the tab is listed, and opens
        # Lazy: the first paint fetched the images in view, not all of them.
        on_page = plugin.locator("section.vc-layer img[data-tag]:not([hidden])").count()
        fetched = [url for url in requested if "/vizcallbacks/image?" in url]
        assert 0 < len(fetched) < on_page
        pages.screenshot(page, tmp_path / "dashboard_network.png")
        check_views(plugin, events, layers, http_get)
        # Two runs side by side: run_b's column shows run_b's own image.
        plugin.click("#vc-compare summary")
        plugin.check("#vc-compare input[value='run_b']")
        plugin.wait_for_selector("section.vc-layer .vc-images[data-run='1']")
        plugin.locator("#vc-step").focus()
        page.keyboard.press("End")
        assert plugin.inner_text("#vc-step-label") == f"step {EPOCHS}"
        b_row = "section.vc-layer[data-layer='conv_a'] .vc-images[data-run='1']"
        assert plugin.locator(f"{b_row} .vc-missing").first.inner_text() == (
            f"not logged at step {EPOCHS}"  # run_b stopped one epoch earlier
        )
        page.keyboard.press("ArrowLeft")
        (image, *_) = loaded_images(plugin, f"{b_row} img[data-tag='activations/conv_a/zero']")
        b_events = read_events(root / "run_b")
        expected = b_events["activations/conv_a/zero"][EPOCHS - 1]
        np.testing.assert_array_equal(decoded(http_get(image["src"])), expected)
        # Every run at once (a sweep): a row per run.
        plugin.check("#vc-compare input[value='']")
        assert plugin.inner_text("#vc-compare summary") == "compare with: 2 runs"
        check_runs_in_rows(plugin, root, http_get)
        # Live: a step logged while the page is open appears on its own (TensorBoard reloads
        # every 5 s, the page asks every 5 s), and a page at the newest step follows it.
        page.keyboard.press("End")
        newer = np.full((20, 30, 3), 200, np.uint8)
        writer = vc.TensorBoardWriter(root / "run_b")
        writer.write([ImageRecord("activations/conv_a/zero", newer)], EPOCHS + 1)
        writer.close()
        plugin.wait_for_function(
            f"() => document.getElementById('vc-step-label').textContent === 'step {EPOCHS + 1}'"
        )
        (image, *_) = loaded_images(plugin, f"{b_row} img[data-tag='activations/conv_a/zero']")
        assert image["step"] == EPOCHS + 1
        np.testing.assert_array_equal(decoded(http_get(image["src"])), newer)


def test_report_opens_from_disk_with_no_request(
    logdir: tuple[Path, list[str]], tmp_path: Path
) -> None:
    needs_browser()
    root, layers = logdir
    output = tmp_path / "report.html"
    assert cli(["report", str(root / "run_a"), "-o", str(output)]) == 0
    events = read_events(root / "run_a")
    with pages.chromium_page() as page:
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        page.goto(output.as_uri())
        page.wait_for_selector("body[data-vc-ready]")
        check_views(page.main_frame, events, layers, data_uri)
        assert requested == [output.as_uri()], requested  # the file itself, nothing else
        # The report of N runs opens on all of them compared.
        many = tmp_path / "runs.html"
        assert cli(["report", *(str(root / run) for run in RUNS), "-o", str(many)]) == 0
        page.goto(many.as_uri())
        page.wait_for_selector("body[data-vc-ready]")
        check_runs_in_rows(page.main_frame, root, data_uri)
    assert requested == [output.as_uri(), many.as_uri()], requested


def test_report_of_an_mlflow_run_written_at_train_end(digits: Any, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    writer = vc.MLflowWriter(
        uri, experiment_name="report", spool_dir=tmp_path / "spool", report=True
    )
    layers = fit(digits, tmp_path, 2, writers=[writer])
    client = MlflowClient(uri)
    (run,) = client.search_runs([client.get_experiment_by_name("report").experiment_id])
    names = [info.path for info in client.list_artifacts(run.info.run_id)]
    assert REPORT_ARTIFACT in names
    local = Path(client.download_artifacts(run.info.run_id, REPORT_ARTIFACT, str(tmp_path)))
    (index,) = report_data(local.read_text("utf-8"))["runs"]
    assert [layer["name"] for layer in index["layers"]] == layers
    conv = index["layers"][0]
    assert {(e["kind"], e["probe"]) for e in conv["images"]} >= {
        ("activations", "zero"),
        ("filters", ""),
    }
    assert all(e["steps"] == [0, 1, 2] for e in conv["images"])
    # The command line builds the same report from the run id.
    again = tmp_path / "again.html"
    assert cli(["report", run.info.run_id, "--tracking-uri", uri, "-o", str(again)]) == 0
    assert report_data(again.read_text("utf-8"))["runs"][0]["layers"] == index["layers"]


def test_mlflow_artifacts_tab_shows_the_report(
    digits: Any, tmp_path: Path, mlflow_server: Any, no_mlflow_env: None
) -> None:
    needs_browser()
    from mlflow import MlflowClient

    experiment = f"report-tab-{uuid.uuid4().hex[:8]}"
    writer = vc.MLflowWriter(
        mlflow_server.uri, experiment_name=experiment, spool_dir=tmp_path / "spool", report=True
    )
    layers = fit(digits, tmp_path, 1, writers=[writer])
    client = MlflowClient(mlflow_server.uri)
    found = client.get_experiment_by_name(experiment)
    (run,) = client.search_runs([found.experiment_id])
    with pages.chromium_page(init_script=pages.MLFLOW_UI_STATE) as page:
        frame = pages.mlflow_artifact_frame(
            page, mlflow_server.uri, found.experiment_id, run.info.run_id, REPORT_ARTIFACT,
            "section.vc-layer",
        )  # fmt: skip
        shown = frame.eval_on_selector_all("section.vc-layer", "ns => ns.map(n => n.dataset.layer)")
        assert shown == layers
        (image, *_) = loaded_images(frame, "section.vc-layer img[data-tag='filters/conv_a']")
        assert image["width"] > 0 and image["src"].startswith("data:image/png")


def test_entry_point_is_found_by_tensorboard(tmp_path: Path) -> None:
    """``pip install`` of this tree (no dependencies): TensorBoard's own dynamic-plugin discovery
    (the ``tensorboard_plugins`` entry points) finds the plugin's loader."""
    root = Path(__file__).resolve().parents[1]
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(root)],
        check=True, capture_output=True, timeout=240,
    )  # fmt: skip
    code = (
        "from tensorboard import default\n"
        "print([f'{p.__module__}.{p.__name__}' for p in default.get_dynamic_plugins()])"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(target)}, cwd=tmp_path,
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    assert "vizcallbacks.dashboard.plugin.VizCallbacksLoader" in found
    assert (target / "vizcallbacks" / "dashboard" / "static" / "dashboard.js").is_file()
