"""The dashboard on a VGG16-sized run: the first paint of the network view, images fetched lazily.

``python -m benchmarks.dashboard`` writes a synthetic run with the real views and the real
``TensorBoardWriter`` (VGG16's 18 conv and pooling layers with their real output shapes, 50 steps,
one probe: activation grids, mean maps, kernel grids, statistics), serves it with a real
``tensorboard`` and the plugin, and opens the plugin in headless Chromium three times. No training:
the activations are smooth random maps, drawn and encoded as the loggers would draw real ones.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from benchmarks.common import progress
from experiments import pages
from vizcallbacks.compute.statistics import activation_statistics
from vizcallbacks.records import Params, Record
from vizcallbacks.views.activations import feature_map_records, statistics_records
from vizcallbacks.views.filters import drift_records, filter_records
from vizcallbacks.writers.tensorboard import TensorBoardWriter

__all__ = ["VGG16_LAYERS", "first_paint", "vgg_sized_run"]

# VGG16 on 224x224 images, block by block: (output side, channels, conv layers, first inputs).
_BLOCKS = (
    (224, 64, 2, 3),
    (112, 128, 2, 64),
    (56, 256, 3, 128),
    (28, 512, 3, 256),
    (14, 512, 3, 512),
)


def _vgg16_layers() -> list[tuple[str, int, int, int]]:
    """(name, output side, channels, kernel inputs or 0 for a pooling layer), in forward order."""
    layers = []
    for block, (side, channels, convs, first_inputs) in enumerate(_BLOCKS, start=1):
        for i in range(1, convs + 1):
            inputs = first_inputs if i == 1 else channels
            layers.append((f"block{block}_conv{i}", side, channels, inputs))
        layers.append((f"block{block}_pool", side // 2, channels, 0))
    return layers


VGG16_LAYERS = _vgg16_layers()


def _maps(rng: np.random.Generator, side: int, channels: int) -> np.ndarray:
    """``(1, side, side, channels)`` smooth non-negative maps (a coarse grid upsampled)."""
    coarse = rng.random((1, max(side // 8, 1), max(side // 8, 1), channels), dtype=np.float32)
    grid = np.repeat(np.repeat(coarse, 8, axis=1), 8, axis=2)[:, :side, :side]
    return np.maximum(grid - 0.3, 0.0)


def vgg_sized_run(log_dir: Path, steps: int = 50) -> int:
    """Write the run; the number of images logged."""
    rng = np.random.default_rng(0)
    writer = TensorBoardWriter(log_dir)
    names = [name for name, *_ in VGG16_LAYERS]
    writer.write([Params({"layers_logged": names})], 0)
    kernels = {
        name: rng.standard_normal((channels, 3, 3, inputs)).astype(np.float32)
        for name, _, channels, inputs in VGG16_LAYERS
        if inputs
    }
    count = 0
    for step in range(steps):
        records: list[Record] = []
        for name, side, channels, inputs in VGG16_LAYERS:
            values = _maps(rng, side, channels)
            records += statistics_records(name, activation_statistics(values))
            records += feature_map_records(name, values, [None], 64, "viridis", 1024)
            if inputs:
                kernel = kernels[name] = kernels[name] * 0.98 + 0.02 * rng.standard_normal(
                    kernels[name].shape, dtype=np.float32
                )
                unit = (kernel - kernel.min()) / (kernel.max() - kernel.min())
                records += filter_records(name, unit, 64, 16, "viridis")
        if step:
            drift = dict.fromkeys(kernels, 0.02)
            records += drift_records(drift, drift)
        count += sum(1 for r in records if hasattr(r, "pixels"))
        writer.write(records, step)
        progress(f"step {step + 1}/{steps} written")
    writer.close()
    return count


def _wait_loaded(server: pages.TensorBoardServer, steps: int, timeout: float = 600) -> int:
    """Wait until TensorBoard has read every step; the size of the run's index in bytes."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            url = f"{server.url}/data/plugin/vizcallbacks/run?run=."
            with urllib.request.urlopen(url, timeout=60) as response:
                body = response.read()
            if len(json.loads(body)["steps"]) == steps:
                return len(body)
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError("TensorBoard did not load the run")
        time.sleep(2)


def first_paint(url: str) -> dict[str, float]:
    """Open the plugin page once: seconds to the browser's first contentful paint, to the network
    view drawn, and to the first layer's images shown; images requested then, and on the page."""
    with pages.chromium_page() as page:
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        started = time.perf_counter()
        page.goto(url)
        page.wait_for_selector("body[data-vc-ready]")
        drawn = time.perf_counter() - started
        page.wait_for_function(
            "() => [...document.querySelectorAll('section.vc-layer')][0]"
            ".querySelectorAll('img[src]').length > 0 && [...document.querySelectorAll("
            "'section.vc-layer')][0].querySelectorAll('img[src]')[0].complete"
        )
        shown = time.perf_counter() - started
        paint = page.evaluate(
            "() => performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? -1"
        )
        images = page.locator("section.vc-layer img[data-tag]").count()
        return {
            "first_contentful_paint_s": paint / 1000,
            "network_view_drawn_s": drawn,
            "first_images_shown_s": shown,
            "images_requested": float(sum("/image?" in u for u in requested)),
            "images_on_page": float(images),
        }


def _tab_drawn(url: str) -> float:
    """Seconds from opening TensorBoard on the vizcallbacks tab to the plugin's view drawn
    (TensorBoard's own page and scripts included)."""
    with pages.chromium_page() as page:
        started = time.perf_counter()
        pages.dashboard_frame(page, url)
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vizcallbacks-dashboard-bench-") as tmp:
        log_dir = Path(tmp)
        started = time.perf_counter()
        logged = vgg_sized_run(log_dir, args.steps)
        size = sum(p.stat().st_size for p in log_dir.glob("events.out.*")) / 1e6
        progress(f"{logged} images, {size:.0f} MB in {time.perf_counter() - started:.0f} s")
        with pages.TensorBoardServer(log_dir, dashboard=True) as server:
            index_bytes = _wait_loaded(server, args.steps)
            started = time.perf_counter()
            _wait_loaded(server, args.steps)
            index_s = time.perf_counter() - started
            plugin = f"{server.url}/data/plugin_entry.html?name=vizcallbacks"
            runs = [first_paint(plugin) for _ in range(args.repeats)]
            in_tensorboard = [_tab_drawn(server.url) for _ in range(args.repeats)]
    print(f"VGG16-sized run: {len(VGG16_LAYERS)} layers x {args.steps} steps, {logged} images")
    print(f"run index: {index_bytes / 1e3:.0f} kB served in {index_s:.2f} s")
    print(
        f"whole TensorBoard page opened on the tab, plugin drawn: median "
        f"{statistics.median(in_tensorboard):.2f} s (all: {in_tensorboard})"
    )
    for key in runs[0]:
        values = [r[key] for r in runs]
        print(f"{key}: median {statistics.median(values):.2f} (all: {values})")


if __name__ == "__main__":
    main()
