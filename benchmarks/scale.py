"""Scale: one logged step of the loggers on VGG16 at 224x224, and on a 512-channel layer.

The loggers' hooks are called directly, as ``fit`` calls them, with no training in between, and
each step is waited for until rendered, written and delivered to MLflow. Grad-CAM is timed apart.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from benchmarks.common import make_writers, median, wait_delivered, wait_published

__all__ = ["StepSeconds", "gradcam_seconds", "logged_steps", "photo", "vgg16"]


def vgg16(size: int) -> keras.Model:
    """``keras.applications.VGG16(weights=None)``; below 224 pixels with 10 classes (smoke runs)."""
    if size == 224:
        return keras.applications.VGG16(weights=None)
    return keras.applications.VGG16(weights=None, input_shape=(size, size, 3), classes=10)


def photo(size: int) -> np.ndarray:
    """A real photograph (matplotlib's Grace Hopper), float32 ``(1, size, size, 3)`` in [0, 1].

    The weights are random (``weights=None``), so ImageNet preprocessing would add nothing.
    """
    import tensorflow as tf
    from matplotlib import cbook
    from PIL import Image

    with cbook.get_sample_data("grace_hopper.jpg") as f, Image.open(f) as picture:
        rgb = np.asarray(picture.convert("RGB"), dtype=np.float32)
    return (tf.image.resize(rgb[None], (size, size)).numpy() / 255.0).astype(np.float32)


@dataclass
class StepSeconds:
    """Per timed step: blocking (``on_epoch_end``), until rendered and written, until delivered."""

    blocking: list[float] = field(default_factory=list)
    written: list[float] = field(default_factory=list)
    delivered: list[float] = field(default_factory=list)

    def medians(self) -> tuple[float, float, float]:
        return median(self.blocking), median(self.written), median(self.delivered)


def _settle(loggers: list[Any], writers: list[Any], count: int) -> None:
    for logger in loggers:
        wait_published(logger, count)
    wait_delivered(writers)


def logged_steps(
    model: keras.Model, loggers: list[Any], writers: list[Any], steps: int
) -> StepSeconds:
    """Run the loggers' hooks for ``steps`` logged epochs, timing each step on its own."""
    result = StepSeconds()
    for logger in loggers:
        logger.set_model(model)
        logger.set_params({"epochs": steps, "steps": 1, "verbose": 0})
        logger.on_train_begin()
    for epoch in range(steps):
        for logger in loggers:
            logger.on_epoch_begin(epoch)
        _settle(loggers, writers, epoch + 1)  # step 0 (before training) comes out of here
        started = time.perf_counter()
        for logger in loggers:
            logger.on_epoch_end(epoch)
        result.blocking.append(time.perf_counter() - started)
        for logger in loggers:
            wait_published(logger, epoch + 2)
        result.written.append(time.perf_counter() - started)
        wait_delivered(writers)
        result.delivered.append(time.perf_counter() - started)
    for logger in loggers:
        logger.on_train_end()
    return result


def vgg_step(
    model: keras.Model, image: np.ndarray, root: Path, steps: int, layer: str | None = None
) -> StepSeconds:
    """Activations + statistics of every conv layer and first-layer filters (``layer=None``),
    or every channel and the filters of ``layer`` alone."""
    import vizcallbacks as vc

    convs = [la.name for la in model.layers if isinstance(la, keras.layers.Conv2D)]
    writers = make_writers(root, f"vgg16_{layer or 'all'}")
    if layer is None:
        loggers = [
            vc.ActivationLogger(image, writers, layers=convs),
            vc.FilterLogger(writers, layers=convs[:1]),
        ]
    else:
        channels = int(model.get_layer(layer).output.shape[-1])
        loggers = [
            vc.ActivationLogger(image, writers, layers=[layer], max_channels=channels),
            vc.FilterLogger(writers, layers=[layer]),
        ]
    return logged_steps(model, loggers, writers, steps)


def gradcam_seconds(model: keras.Model, image: np.ndarray) -> tuple[float, float]:
    """Seconds of ``grad_cam()`` called once (builds and traces) and of a reused ``GradCAM``."""
    from vizcallbacks.compute.gradcam import GradCAM, grad_cam

    started = time.perf_counter()
    grad_cam(model, image)
    once = time.perf_counter() - started
    cam = GradCAM(model)
    cam(image)
    warm = []
    for _ in range(3):
        started = time.perf_counter()
        cam(image)
        warm.append(time.perf_counter() - started)
    return once, median(warm)
