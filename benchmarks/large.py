"""Large models and scaling: ResNet50 with ActivationLogger on every layer (target 4), VGG16's
logged step, and cost per step against layers, probes and channels (target 5).

Every figure comes from :func:`benchmarks.steps.hook_loop`: the hooks called as ``fit`` calls
them, process CPU time of all threads, each step settled before the next.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from benchmarks.common import Row, judged, make_writers, measured, median, progress
from benchmarks.steps import StepCost, baseline, hook_loop, idle_rate, step_cost

__all__ = ["conv_stack", "resnet_rows", "scaling", "scaling_markdown", "vgg_rows"]


def photo(size: int) -> tuple[np.ndarray, str]:
    """A real photograph ``(1, size, size, 3)``, caffe-preprocessed (VGG16 and ResNet50 alike)."""
    from experiments.vgg16 import photo_probe

    return photo_probe(size)


def conv_stack(layers: int, channels: int, size: int = 32) -> keras.Model:
    """A synthetic stack of ``layers`` 3x3 convolutions of ``channels`` each, on RGB images."""
    keras.utils.set_random_seed(0)
    body = [
        keras.layers.Conv2D(channels, 3, padding="same", activation="relu") for _ in range(layers)
    ]
    head = [keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(10)]
    return keras.Sequential([keras.Input((size, size, 3)), *body, *head], name="conv_stack")


def forward_seconds(model: keras.Model, image: np.ndarray, repeats: int = 5) -> float:
    """Median wall time of one compiled inference forward pass of ``image``."""
    import tensorflow as tf

    forward = tf.function(lambda x: model(x, training=False))
    forward(image)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        forward(image)
        times.append(time.perf_counter() - started)
    return median(times)


def resnet_rows(root: Path, size: int, steps: int, quick: bool) -> list[Row]:
    """ActivationLogger on every layer of ResNet50 (``quick``: an 8-layer stack), TensorBoard
    alone (the target's configuration), ``steps`` logged steps: blocking, background CPU and
    RSS per step."""
    import vizcallbacks as vc

    if quick:
        model, what = conv_stack(8, 64, size), f"8-layer conv stack {size}x{size} (quick)"
    else:
        model = keras.applications.ResNet50(weights=None, input_shape=(size, size, 3))
        what = f"ResNet50 {size}x{size}"
    image, name = photo(size)
    forward = forward_seconds(model, image)
    writers = [vc.TensorBoardWriter(root / "tensorboard" / "resnet")]
    logger = vc.ActivationLogger(image, writers, probe_names=[name])
    base = baseline(model, steps)
    rate = idle_rate(0.3)
    loop = hook_loop(model, [logger], writers, steps)
    layers = sum(len(la.output.shape) == 4 for la in model.layers)
    progress(f"{what}: {steps} steps in {loop.wall:.0f} s, forward {1000 * forward:.0f} ms")
    base_cpu = base.cpu - base.begin_cpu + rate * max(0.0, loop.wall - base.wall)
    whole = (loop.cpu - loop.begin_cpu - base_cpu) / steps
    background = [c - b for c, b in zip(loop.step_cpu, loop.blocking_cpu, strict=True)]
    average = whole - sum(loop.blocking_cpu) / steps
    bg_row = judged(
        f"4. {what}: background CPU per step, TensorBoard (spread over steps)",
        background,
        "s",
        2,
    )
    # RSS swings by +-100 MB from one step to the next (the allocator); compare step windows
    warm = min(9, len(loop.rss) - 2)
    window = max(1, min(10, (len(loop.rss) - warm) // 2))
    early, late = loop.rss[warm : warm + window], loop.rss[-window:]
    growth = median(late) - median(early)
    return [
        judged(
            f"4. {what}: on_epoch_end blocking per step (spread over steps), ≤ forward "
            f"({1000 * forward:.0f} ms) + 50 ms",
            [1000 * b for b in loop.blocking],
            "ms",
            1000 * forward + 50,
        ),
        bg_row,
        judged(
            f"4. {what}: RSS growth, median of the last {window} steps over median of steps "
            f"{warm + 1}-{warm + window} (flat)",
            [growth],
            "MB",
            25,
        ),
        Row(
            f"4. {what}: RSS from step {warm + 1} to {len(loop.rss)}: lowest to highest",
            max(loop.rss[warm:]) - min(loop.rss[warm:]),
            "MB",
        ),
        Row(
            f"4. {what}: CPU per step, whole loop over the baseline (summary, close "
            "included), minus on_epoch_end",
            average,
            "s",
        ),
        Row(f"4. {what}: layers drawn per step", float(layers), "layers"),
        Row(f"4. {what}: one forward pass (compiled, 1 image)", 1000 * forward, "ms"),
        Row(f"4. {what}: on_train_begin CPU (setup, tracing, step 0)", loop.begin_cpu, "s"),
        Row(f"4. {what}: RSS after the last step", loop.rss[-1], "MB"),
        Row(f"4. {what}: wall per step, settled (sequential, no training)", loop.wall / steps, "s"),
    ]


def vgg_rows(root: Path, size: int, steps: int) -> list[Row]:
    """The old VGG16 step: every conv layer's grid and statistics, the first layer's filters."""
    import vizcallbacks as vc

    if size == 224:
        model = keras.applications.VGG16(weights=None)
    else:
        model = keras.applications.VGG16(weights=None, input_shape=(size, size, 3), classes=10)
    image, _ = photo(size)
    convs = [la.name for la in model.layers if isinstance(la, keras.layers.Conv2D)]

    def setup(root: Path, name: str) -> tuple[list, list]:
        writers = make_writers(root, name)
        loggers = [
            vc.ActivationLogger(image, writers, layers=convs),
            vc.FilterLogger(writers, layers=convs[:1]),
        ]
        return loggers, writers

    cost = StepCost("vgg16")
    step_cost(cost, model, setup, root, steps, 0)
    what = f"8. VGG16 {size}x{size} (untrained), 13 conv grids + stats + first filters"
    return [
        measured(f"{what}: CPU per logged step, TensorBoard + MLflow", cost.per_step, "s"),
        measured(f"{what}: on_epoch_end blocking", [1000 * b for b in cost.blocking], "ms"),
        measured(f"{what}: wall per step, settled", cost.wall, "s"),
    ]


# Target 5: scaling ------------------------------------------------------------------------
@dataclass(frozen=True)
class Scale:
    layers: int
    probes: int
    channels: int
    tensorboard_ms: float
    both_ms: float


def scaling_configs(quick: bool) -> list[tuple[int, int, int]]:
    """(layers, probes, channels): each varied alone around 8 layers, 1 probe, 64 channels."""
    if quick:
        return [(2, 1, 8), (2, 2, 16)]
    return [(2, 1, 64), (8, 1, 64), (32, 1, 64), (8, 4, 64), (8, 16, 64), (8, 1, 8), (8, 1, 256)]


def scaling(root: Path, steps: int, quick: bool) -> list[Scale]:
    """CPU ms per step of ActivationLogger + FilterLogger on each conv stack, TensorBoard alone
    and TensorBoard + MLflow (one pair each)."""
    from benchmarks.steps import both_writers, tensorboard_only

    found = []
    for layers, probes, channels in scaling_configs(quick):
        model = conv_stack(layers, channels)
        probe = np.random.default_rng(0).random((probes, 32, 32, 3), dtype="float32")
        ms = []
        for kind, setup in (("tensorboard", tensorboard_only), ("both", both_writers)):
            cost = StepCost(f"scale_{layers}_{probes}_{channels}_{kind}")
            step_cost(cost, model, setup(probe), root, steps, 0)
            ms.append(1000 * cost.per_step[0])
        found.append(Scale(layers, probes, channels, *ms))
    return found


def scaling_rows(found: Sequence[Scale]) -> list[Row]:
    rows = []
    for s in found:
        what = f"5. scaling: {s.layers} layers, {s.probes} probes, {s.channels} channels"
        rows += [
            Row(f"{what}, TensorBoard: CPU per step", s.tensorboard_ms, "ms"),
            Row(f"{what}, TensorBoard + MLflow: CPU per step", s.both_ms, "ms"),
        ]
    return rows


def scaling_markdown(found: Sequence[Scale]) -> str:
    lines = [
        "| conv layers | probes | channels | TensorBoard (CPU ms/step) | "
        "TensorBoard + MLflow (CPU ms/step) |",
        "|---:|---:|---:|---:|---:|",
    ]
    for s in found:
        lines.append(
            f"| {s.layers} | {s.probes} | {s.channels} | {s.tensorboard_ms:.0f} | {s.both_ms:.0f} |"
        )
    return "\n".join(lines)
