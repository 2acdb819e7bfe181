"""The vizcallbacks tab as a newcomer first sees it, in headless Chromium on a real ``tensorboard``.

One run written straight into its log directory (TensorBoard's run ``.``), as the README demo
does: the tab opens at the newest step, names the run after its directory, opens on the first
probe given, draws one-input-channel kernels as a near-square grid, and says Flatten's zero units
plainly.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pytest
from keras import layers
from PIL import Image

import vizcallbacks as vc
from experiments import pages
from tests.events import read_events

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

EPOCHS = 2
PROBES = ["bag_2000", "ankle_boot"]  # given in this order; sorted they would be the other way


def small_cnn() -> keras.Model:
    inputs = keras.Input((16, 16, 1))
    x = layers.Conv2D(16, 3, activation="relu", name="conv1")(inputs)  # one input channel
    x = layers.MaxPooling2D(name="pool1")(x)
    x = layers.Flatten(name="flatten")(x)
    outputs = layers.Dense(10, activation="softmax", name="probs")(x)
    model = keras.Model(inputs, outputs)
    # Half the filters stay dead (a ReLU after a bias of -1000): Flatten surely has zero units.
    model.get_layer("conv1").bias.assign(np.repeat([0.0, -1000.0], 8).astype("float32"))
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    return model


@pytest.fixture(scope="module")
def log_dir(tmp_path_factory: pytest.TempPathFactory, digits: Any) -> Path:
    keras.utils.set_random_seed(0)
    x, y = digits
    root = tmp_path_factory.mktemp("first_look") / "fashion_cnn"
    writers = [vc.TensorBoardWriter(root)]
    small_cnn().fit(
        x[:64],
        y[:64],
        epochs=EPOCHS,
        verbose=0,
        callbacks=[
            vc.ActivationLogger(x[:2], writers, probe_names=PROBES),
            vc.FilterLogger(writers),
        ],
    )
    return root


def test_first_look(log_dir: Path) -> None:
    reason = pages.browser_missing()
    if reason:
        pytest.skip(f"no browser check: {reason}")
    events = read_events(log_dir)
    kernels = events["filters/conv1"][EPOCHS]
    height, width = kernels.shape[:2]
    assert 0.5 <= width / height <= 2, kernels.shape  # the logged picture: no 16 x 1 strip
    zero_units = int(events["dead_channels/flatten"][EPOCHS])
    assert zero_units >= 8 * 7 * 7  # the dead filters' whole maps
    assert "dead_channel_indices/flatten" not in events  # counted, never listed
    with pages.TensorBoardServer(log_dir, dashboard=True) as server, pages.chromium_page() as page:
        server.wait_for_tags("images", ["filters/conv1"])
        server.wait_for_tags("scalars", ["dead_channels/flatten"])
        deadline = time.monotonic() + 60  # TensorBoard loads the steps in the background
        while EPOCHS not in server.image_steps("filters/conv1") or EPOCHS not in (
            server.scalar_steps("dead_channels/flatten")
        ):
            assert time.monotonic() < deadline, "TensorBoard did not load the last step"
            time.sleep(0.5)
        frame = pages.dashboard_frame(page, server.url)
        frame.wait_for_selector("section.vc-layer")
        # 1. The newest step, not the untrained network.
        assert frame.inner_text("#vc-step-label") == f"step {EPOCHS}"
        assert frame.evaluate("() => document.getElementById('vc-step').value") == str(EPOCHS)
        # 2. The run is named after its directory; the probe's caption carries no ".".
        runs = frame.eval_on_selector_all("#vc-run option", "os => os.map(o => o.textContent)")
        assert runs == ["fashion_cnn"]
        captions = frame.eval_on_selector_all(
            "section.vc-input figcaption", "fs => fs.map(f => f.textContent)"
        )
        assert captions == ["input"]
        # 3. The first probe given, not the last one by name.
        assert frame.evaluate("() => document.getElementById('vc-probe').value") == PROBES[0]
        # 4. The kernel grid shown is the near-square picture logged at that step.
        grid = frame.locator("section.vc-layer[data-layer='conv1'] img[data-tag='filters/conv1']")
        grid.scroll_into_view_if_needed()
        frame.wait_for_function(
            "() => [...document.querySelectorAll(\"img[data-tag='filters/conv1']\")]"
            ".every((i) => i.complete && i.naturalWidth)"
        )
        src = grid.get_attribute("src")
        assert src is not None
        served = server.image_bytes("filters/conv1", EPOCHS)
        with Image.open(io.BytesIO(served)) as image:
            np.testing.assert_array_equal(np.asarray(image), kernels)
        # 5. Flatten's zero units said plainly, in grey, not as dead channels in red.
        note = frame.locator("section.vc-layer[data-layer='flatten'] .vc-dead span")
        assert note.inner_text() == (
            f"{zero_units} units are zero for every probe (counted, not flagged)"
        )
        assert note.get_attribute("class") == "vc-counted"
        assert note.evaluate("n => getComputedStyle(n).color") == "rgb(102, 102, 102)"
        flagged = frame.locator("section.vc-layer[data-layer='conv1'] .vc-dead span")
        assert flagged.get_attribute("class") == "vc-flagged"  # conv channels are still named
        assert flagged.inner_text().startswith("8 of the channels are zero for every probe")
