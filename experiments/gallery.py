"""The README's pictures, from real runs: ``python -m experiments.gallery`` writes ``docs/*.png``.

It trains ``fashion_cnn`` for a few epochs on a 2,000-image subset, logging to TensorBoard and to
a real ``mlflow server`` (SQLite store in a temporary folder), logs the pretrained VGG16 once, then

- ``docs/tensorboard_images.png``: TensorBoard's Images tab (``tensorboard`` started as the README
  says), filtered on the bag's first-layer maps and its Grad-CAM, in headless Chromium;
- ``docs/mlflow_run.png``: the MLflow run page with an image card and its step slider;
- ``docs/dashboard_network.png``: the vizcallbacks tab in TensorBoard, the bag down the layers;
- ``docs/dashboard_layer.png``: the one-file report opened from disk, conv1 across the epochs;
- ``docs/evolution.png``: the ``evolution/conv1`` strip (the bag's maps, a row per epoch);
- ``docs/vgg16_filters.png``: VGG16's 64 first-layer kernels in colour (``filters_rgb``);
- ``docs/vgg16_patterns.png``: filter patterns of block1 to block5 (a column each), pixel-space
  rows above Fourier rows, same steps and seed (``--skip-patterns``: keep the picture there;
  ``--patterns-only``: only this one, no browser needed);
- ``docs/gradcam.png``: the Grad-CAM overlays of the last epoch for the bag and four classes;
- ``docs/attribution.png``: every attribution method side by side, a row per probe image.

The pictures are read back from the event files and from the pages a user would open; each is
kept under ``--max-kb`` (default 300). Needs ``.[mlflow,experiments,test]`` and Chromium
(``/usr/bin/chromium``, or ``$VIZ_CHROMIUM``); takes about three minutes on two cores.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "PICTURES",
    "compose",
    "event_images",
    "main",
    "pattern_picture",
    "pictures_from_logs",
]

log = logging.getLogger(__name__)

PROBE = "bag_2000"  # fashion_cnn's first probe: test image 2000
GRADCAM_PROBES = (PROBE, "tshirt", "trouser", "sneaker", "ankle_boot")
GRADCAM_LAYER = "pool2"  # GradCAMLogger's default: the last layer with a 4-D output
TB_FILTER = rf"^(activations/conv\d|gradcam/{GRADCAM_LAYER})/{PROBE}$"
MLFLOW_CARD = f"activations/conv1/{PROBE}"
ATTRIBUTION_TABLE = "attribution_methods/all_probes"  # a row per probe, a column per method

# --logs mode: experiment -> (log dir below --logs, tags drawn left to right at their last step)
PICTURES: dict[str, tuple[str, tuple[str, ...]]] = {
    "fashion_cnn": ("fashion_cnn", ("probe/input/bag_2000", "activations/conv1/bag_2000")),
    "mnist_conv10": ("mnist_conv10", ("probe/input", "activations/conv10")),
    "lenet5": (
        "lenet5/valid",
        ("probe/input/bag_2000", "activations/conv1/bag_2000", "activations/relu1/bag_2000"),
    ),
    "cats_vs_dogs": ("cats_vs_dogs", ("probe/input/faces", "activations/conv1/faces")),
    "vgg16": ("vgg16", ("filters_rgb/block1_conv1", "activations/block1_conv2")),
}


def event_images(log_dir: Path, tags: Sequence[str]) -> dict[str, dict[int, np.ndarray]]:
    """``{tag: {step: RGB uint8 image}}`` for ``tags``, from the event files in ``log_dir``."""
    import tensorflow as tf
    from PIL import Image

    found: dict[str, dict[int, np.ndarray]] = {t: {} for t in tags}
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.tag in found:
                    png = tf.make_ndarray(value.tensor)[2]
                    image = Image.open(io.BytesIO(png)).convert("RGB")
                    found[value.tag][event.step] = np.asarray(image)
    missing = [t for t, steps in found.items() if not steps]
    if missing:
        raise FileNotFoundError(
            f"{log_dir} has no image tags {missing}: run the experiment with its default "
            "--log-dir first (see the README)"
        )
    return found


def compose(
    images: Sequence[np.ndarray], height: int = 320, gap: int = 8, resample: str = "nearest"
) -> np.ndarray:
    """Images scaled to ``height`` and placed left to right on white, ``gap`` apart."""
    from PIL import Image

    method = Image.Resampling.NEAREST if resample == "nearest" else Image.Resampling.LANCZOS
    scaled = []
    for image in images:
        width = max(1, round(image.shape[1] * height / image.shape[0]))
        scaled.append(np.asarray(Image.fromarray(image).resize((width, height), method)))
    total = sum(i.shape[1] for i in scaled) + gap * (len(scaled) - 1)
    canvas = np.full((height, total, 3), 255, np.uint8)
    x = 0
    for image in scaled:
        canvas[:, x : x + image.shape[1]] = image
        x += image.shape[1] + gap
    return canvas


def save(image: np.ndarray | bytes, path: Path, max_bytes: int, max_width: int = 1200) -> Path:
    """Write a PNG no wider than ``max_width`` and no bigger than ``max_bytes`` (downscaled, then
    reduced to a 256-colour palette, as needed)."""
    from PIL import Image

    picture = (
        Image.open(io.BytesIO(image)).convert("RGB")
        if isinstance(image, bytes)
        else Image.fromarray(image)
    )
    if picture.width > max_width:
        height = round(picture.height * max_width / picture.width)
        picture = picture.resize((max_width, height), Image.Resampling.LANCZOS)
    for attempt in range(6):
        buffer = io.BytesIO()
        candidate = (
            picture if attempt == 0 else picture.quantize(256, method=Image.Quantize.MEDIANCUT)
        )
        candidate.save(buffer, format="PNG", optimize=True)
        if buffer.tell() <= max_bytes:
            break
        if attempt:  # already a palette: make it smaller
            picture = picture.resize(
                (round(picture.width * 0.85), round(picture.height * 0.85)),
                Image.Resampling.LANCZOS,
            )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    log.info(
        "wrote %s (%d x %d, %d KB)", path, candidate.width, candidate.height, buffer.tell() // 1024
    )
    return path


def attribution_picture(log_dir: Path) -> np.ndarray:
    """The last step's side-by-side picture of every attribution method, from the event file."""
    (steps,) = event_images(log_dir, [ATTRIBUTION_TABLE]).values()
    return steps[max(steps)]


def train_fashion(work: Path, epochs: int, max_samples: int, tracking_uri: str) -> None:
    """Run ``experiments.fashion_cnn`` into ``work/fashion_cnn``, logging to MLflow too."""
    from experiments import fashion_cnn

    log_dir = work / "fashion_cnn"
    os.environ["MLFLOW_TRACKING_URI"] = tracking_uri
    fashion_cnn.main(
        ["--epochs", str(epochs), "--max-samples", str(max_samples), "--log-dir", str(log_dir)]
    )


def pattern_picture(size: int = 64, filters: int = 4, steps: int = 32) -> np.ndarray:
    """VGG16's filter patterns, block1 to block5 left to right; for each, a pixel-space row of
    ``filters`` patterns above the Fourier row (each pattern as the loggers draw it)."""
    from experiments import vgg16
    from vizcallbacks.render.overlay import pattern_images

    found = vgg16.block_patterns(size, filters, steps)
    columns = []
    for layer in vgg16.BLOCK_END_NAMES:
        rows = [
            np.concatenate(list(pattern_images(found[layer, kind])), axis=1)
            for kind in ("pixel", "fourier")
        ]
        columns.append(np.concatenate(rows, axis=0))
    return compose(columns, height=2 * size * 2, gap=12)


def log_vgg16(work: Path) -> None:
    """Log the pretrained VGG16 once (``--epochs 0``) into ``work/vgg16``."""
    from experiments import vgg16

    log_dir = work / "vgg16"
    vgg16.main(["--epochs", "0", "--no-mlflow", "--log-dir", str(log_dir)])


def tensorboard_picture(log_dir: Path) -> bytes:
    """TensorBoard's Images tab on ``log_dir``, filtered on :data:`TB_FILTER`."""
    from experiments import pages

    with pages.TensorBoardServer(log_dir) as server, pages.chromium_page(1400, 900) as page:
        server.wait_for_tags("images", [f"activations/conv1/{PROBE}"])
        pages.tensorboard_open_images(page, server.url, tag_filter=TB_FILTER)
        shown = pages.tensorboard_rendered_images(
            page, [f"activations/conv1/{PROBE}", f"gradcam/{GRADCAM_LAYER}/{PROBE}"]
        )
        if not shown or not all(w for w, _ in shown.values()):
            raise RuntimeError(f"TensorBoard did not draw the images: {shown}")
        page.mouse.wheel(0, -10_000)
        page.wait_for_timeout(500)
        return bytes(page.screenshot())


def dashboard_pictures(log_dir: Path, work: Path) -> tuple[bytes, bytes]:
    """The plugin's network view in TensorBoard (the bag, a middle step), and the report file's
    layer view of conv1 (every epoch side by side)."""
    from experiments import pages
    from vizcallbacks.dashboard import build_report

    with pages.TensorBoardServer(log_dir, dashboard=True) as server:
        server.wait_for_tags("images", [f"activations/conv1/{PROBE}"])
        with pages.chromium_page(1400, 900) as page:
            frame = pages.dashboard_frame(page, server.url)
            frame.select_option("#vc-probe", PROBE)
            frame.locator("#vc-step").focus()
            page.keyboard.press("End")
            page.keyboard.press("ArrowLeft")
            page.wait_for_timeout(1500)  # the rows in view fetch their images
            network = bytes(page.screenshot())
    report = build_report(str(log_dir), work / "report.html")
    with pages.chromium_page(1400, 900) as page:
        page.goto(report.resolve().as_uri())
        page.wait_for_selector("body[data-vc-ready]")
        page.select_option("#vc-probe", PROBE)
        page.click("#vc-tab-layer")
        page.select_option("#vc-layer", "conv1")
        page.wait_for_timeout(1000)
        layer = bytes(page.screenshot())
    return network, layer


def mlflow_picture(uri: str, experiment: str = "fashion_cnn") -> bytes:
    """The MLflow run page: the bag's first-layer maps in their card, with the step slider."""
    from mlflow import MlflowClient

    from experiments import pages

    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        raise RuntimeError(f"no MLflow experiment {experiment!r} at {uri}")
    run = client.search_runs([found.experiment_id], order_by=["start_time DESC"])[0]
    with pages.chromium_page(1400, 900, init_script=pages.MLFLOW_UI_STATE) as page:
        pages.mlflow_open_run(page, uri, found.experiment_id, run.info.run_id)
        cards = pages.mlflow_image_cards(page, [MLFLOW_CARD])
        if not cards.get(MLFLOW_CARD, (0,))[0]:
            raise RuntimeError(f"MLflow did not draw {MLFLOW_CARD}: {cards}")
        page.wait_for_timeout(1000)
        return bytes(page.screenshot())


def pictures_from_logs(logs: Path, out: Path, names: Sequence[str], max_bytes: int) -> None:
    """``--logs`` mode: ``out/<experiment>.png`` from the logs the experiments already wrote."""
    for name in names:
        sub, tags = PICTURES[name]
        found = event_images(logs / sub, tags)
        last = [found[t][max(found[t])] for t in tags]
        save(compose(last), out / f"{name}.png", max_bytes, max_width=4096)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=None, help="default docs (docs/experiments with --logs)"
    )
    parser.add_argument("--epochs", type=int, default=4, help="fashion_cnn epochs (default 4)")
    parser.add_argument("--max-samples", type=int, default=2000, help="default 2000")
    parser.add_argument("--max-kb", type=int, default=300, help="largest PNG, default 300 KB")
    parser.add_argument("--keep", type=Path, default=None, help="keep the logs in this folder")
    parser.add_argument(
        "--reuse", action="store_true", help="with --keep: reuse the runs already logged there"
    )
    parser.add_argument(
        "--logs",
        type=Path,
        default=None,
        help="no training, no browser: one picture per experiment (docs/experiments/<name>.png) "
        "from the logs the experiments wrote below this folder",
    )
    parser.add_argument("--only", nargs="*", choices=sorted(PICTURES), default=sorted(PICTURES))
    parser.add_argument(
        "--skip-patterns", action="store_true", help="keep docs/vgg16_patterns.png as it is"
    )
    parser.add_argument(
        "--patterns-only", action="store_true", help="only docs/vgg16_patterns.png (no browser)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    limit = args.max_kb * 1024
    if args.logs is not None:
        pictures_from_logs(args.logs, args.out or Path("docs/experiments"), args.only, limit)
        return
    if args.patterns_only:
        save(pattern_picture(), (args.out or Path("docs")) / "vgg16_patterns.png", limit, 1600)
        return

    from experiments import pages
    from experiments.servers import MlflowServer

    missing = pages.browser_missing()
    if missing:
        raise SystemExit(f"error: no screenshots without a browser: {missing}")
    out = args.out or Path("docs")
    work = args.keep or Path(tempfile.mkdtemp(prefix="vizcallbacks-gallery-"))
    work.mkdir(parents=True, exist_ok=True)
    server = MlflowServer(work / "mlflow")
    (work / "mlflow").mkdir(exist_ok=True)
    started = time.perf_counter()
    server.launch()  # boots while VGG16 is logged
    try:
        vgg_dir = work / "vgg16"
        if not (args.reuse and vgg_dir.is_dir()):
            log_vgg16(work)
        (first_conv,) = event_images(vgg_dir, ["filters_rgb/block1_conv1"]).values()
        kernels = first_conv[max(first_conv)]
        save(compose([kernels], height=2 * kernels.shape[0]), out / "vgg16_filters.png", limit)
        if not args.skip_patterns:
            save(pattern_picture(), out / "vgg16_patterns.png", limit, max_width=1600)

        server.wait_until_healthy()
        fashion_dir = work / "fashion_cnn"
        if not (args.reuse and fashion_dir.is_dir()):
            train_fashion(work, args.epochs, args.max_samples, server.uri)
        strips = event_images(fashion_dir, ["evolution/conv1"])
        (strip,) = strips.values()
        rows = strip[max(strip)]  # a row per logged step, the first 16 channels
        save(compose([rows], height=2 * rows.shape[0]), out / "evolution.png", limit)
        gradcams = event_images(
            fashion_dir, [f"gradcam/{GRADCAM_LAYER}/{p}" for p in GRADCAM_PROBES]
        )
        last = [steps[max(steps)] for steps in gradcams.values()]
        save(compose(last, height=200), out / "gradcam.png", limit)
        save(attribution_picture(fashion_dir), out / "attribution.png", limit, max_width=1600)

        save(tensorboard_picture(fashion_dir), out / "tensorboard_images.png", limit)
        network, layer = dashboard_pictures(fashion_dir, work)
        save(network, out / "dashboard_network.png", limit)
        save(layer, out / "dashboard_layer.png", limit)
        save(mlflow_picture(server.uri), out / "mlflow_run.png", limit)
    finally:
        server.stop()
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    log.info("gallery done in %.0f s", time.perf_counter() - started)


if __name__ == "__main__":
    main()
