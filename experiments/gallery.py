"""Pictures for the README: one image per experiment, read back from its TensorBoard event files.

Run the experiments first (their default log dirs), then ``python -m experiments.gallery``; it
writes ``docs/experiments/<name>.png`` from the last logged step of the tags chosen below, side by
side when there are several.
"""

from __future__ import annotations

import argparse
import io
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["PICTURES", "compose", "last_images", "main"]

log = logging.getLogger(__name__)

# experiment -> (log dir below --logs, tags drawn left to right)
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


def last_images(log_dir: Path, tags: Sequence[str]) -> dict[str, np.ndarray]:
    """The image of each tag at its highest step in the event files of ``log_dir``."""
    import tensorflow as tf
    from PIL import Image

    found: dict[str, tuple[int, np.ndarray]] = {}
    for path in sorted(log_dir.glob("events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(str(path)):
            for value in event.summary.value:
                if value.tag in tags and event.step >= found.get(value.tag, (-1, None))[0]:
                    png = tf.make_ndarray(value.tensor)[2]
                    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
                    found[value.tag] = (event.step, image)
    missing = [t for t in tags if t not in found]
    if missing:
        raise FileNotFoundError(
            f"{log_dir} has no image tags {missing}: run the experiment with its default "
            "--log-dir first (see the README)"
        )
    return {t: found[t][1] for t in tags}


def compose(images: Sequence[np.ndarray], height: int = 320, gap: int = 8) -> np.ndarray:
    """Images scaled (nearest) to ``height`` and placed left to right on white, ``gap`` apart."""
    from PIL import Image

    scaled = []
    for image in images:
        width = max(1, round(image.shape[1] * height / image.shape[0]))
        resized = Image.fromarray(image).resize((width, height), Image.Resampling.NEAREST)
        scaled.append(np.asarray(resized))
    total = sum(i.shape[1] for i in scaled) + gap * (len(scaled) - 1)
    canvas = np.full((height, total, 3), 255, np.uint8)
    x = 0
    for image in scaled:
        canvas[:, x : x + image.shape[1]] = image
        x += image.shape[1] + gap
    return canvas


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logs", type=Path, default=Path("logs"))
    parser.add_argument("--out", type=Path, default=Path("docs/experiments"))
    parser.add_argument("--only", nargs="*", choices=sorted(PICTURES), default=sorted(PICTURES))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args.out.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    for name in args.only:
        sub, tags = PICTURES[name]
        images = last_images(args.logs / sub, tags)
        target = args.out / f"{name}.png"
        Image.fromarray(compose([images[t] for t in tags])).save(target, optimize=True)
        log.info("wrote %s (%s)", target, ", ".join(tags))


if __name__ == "__main__":
    main()
