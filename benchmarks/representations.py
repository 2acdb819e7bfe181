"""RepresentationLogger's cost: ``python -m benchmarks.representations [--steps 20] [--quick]``.

The logger's hooks are called as ``fit`` calls them (:func:`benchmarks.steps.hook_loop`, every
step settled before the next), writing to TensorBoard; process CPU (every thread) and wall are
measured side by side:

1. the Fashion-MNIST CNN, every layer, 256 real test images: CPU per logged step (≤ 150 ms),
   with the CPU of ``on_epoch_end`` (forward passes and Grams) and the wall beside it;
2. ResNet50 at 64 px, every layer, 64 probe images: CPU and wall per logged step (≤ 3 s), and
   RSS over ``--steps`` logged steps (flat: the last steps' median over the first ones').

The machine's load is printed before and after: on shared cores, wall time says little.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

from benchmarks.common import (
    Row,
    judged,
    machine_description,
    measured,
    median,
    progress,
    table_markdown,
)
from benchmarks.steps import Loop, baseline, hook_loop, idle_rate

__all__ = ["main", "run"]


def _cost_rows(
    what: str, loop: Loop, base: Loop, rate: float, limit_ms: float, wall_limit_ms: float = 0.0
) -> list[Row]:
    """CPU per step over the baseline loop (judged), and where it goes; wall beside it (judged
    too when ``wall_limit_ms`` is given)."""
    steps = loop.steps
    idle = rate * max(0.0, (loop.wall - base.wall) / steps)  # what the process burns anyway
    per_step = [1000 * (c - median(base.step_cpu) - idle) for c in loop.step_cpu]
    wall_what, wall = f"{what}: wall per logged step, settled", [1000 * loop.wall / steps]
    return [
        judged(f"{what}: CPU per logged step (compute + view + write)", per_step, "ms", limit_ms),
        measured(
            f"{what}: CPU in on_epoch_end per step (forward passes + Grams; the rest is "
            "the matrices, picture and writing)",
            [1000 * c for c in loop.blocking_cpu],
            "ms",
        ),
        judged(wall_what, wall, "ms", wall_limit_ms)
        if wall_limit_ms
        else measured(wall_what, wall, "ms"),
        measured(
            f"{what}: on_epoch_end blocking per step (wall)",
            [1000 * b for b in loop.blocking],
            "ms",
        ),
        Row(f"{what}: on_train_begin CPU (setup, tracing, step 0)", loop.begin_cpu, "s"),
    ]


def fashion_rows(root: Path, steps: int, probes: int) -> list[Row]:
    """Target 1: the Fashion-MNIST CNN, every layer, ``probes`` real test images."""
    import vizcallbacks as vc
    from experiments.datasets import load_fashion_mnist, scaled
    from experiments.fashion_cnn import build_model

    model = build_model()
    images = scaled(load_fashion_mnist().x_test[:probes])
    logger = vc.RepresentationLogger(images, [vc.TensorBoardWriter(root / "fashion")])
    base, rate = baseline(model, steps), idle_rate(0.3)
    loop = hook_loop(model, [logger], logger.fanout.writers, steps)
    what = f"1. Fashion-MNIST CNN, all layers, {probes} probes"
    progress(f"{what}: {steps} steps in {loop.wall:.1f} s")
    return _cost_rows(what, loop, base, rate, 150.0)


def resnet_rows(root: Path, steps: int, probes: int, size: int, quick: bool) -> list[Row]:
    """Target 2: ResNet50 at ``size`` px, every layer, ``probes`` images; memory over steps."""
    import vizcallbacks as vc

    if quick:
        model = keras.applications.MobileNetV2(weights=None, input_shape=(size, size, 3))
    else:
        model = keras.applications.ResNet50(weights=None, input_shape=(size, size, 3))
    images = np.random.default_rng(0).uniform(0, 1, (probes, size, size, 3)).astype("float32")
    logger = vc.RepresentationLogger(images, [vc.TensorBoardWriter(root / "resnet")])
    base, rate = baseline(model, steps), idle_rate(0.3)
    loop = hook_loop(model, [logger], logger.fanout.writers, steps)
    what = f"2. {model.name} {size}x{size}, all layers, {probes} probes"
    progress(f"{what}: {steps} steps in {loop.wall:.1f} s")
    warm = min(4, len(loop.rss) - 2)
    window = max(1, min(5, (len(loop.rss) - warm) // 2))
    growth = median(loop.rss[-window:]) - median(loop.rss[warm : warm + window])
    return [
        *_cost_rows(what, loop, base, rate, 3000.0, wall_limit_ms=3000.0),
        judged(
            f"{what}: RSS growth, median of the last {window} steps over steps "
            f"{warm + 1}-{warm + window} (flat)",
            [growth],
            "MB",
            25,
        ),
        Row(f"{what}: RSS after the last step", loop.rss[-1], "MB"),
        Row(f"{what}: layers compared", float(len(logger.run_params()["layers_logged"])), "layers"),
        Row(f"{what}: layers pooled to 8x8", float(len(logger.run_params()["layers_reduced"])), ""),
    ]


def run(steps: int, quick: bool) -> list[Row]:
    """Both targets; ``quick`` shrinks them to a smoke run."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rows = fashion_rows(root, 3 if quick else max(5, steps // 4), 32 if quick else 256)
        size = 32 if quick else 64
        rows += resnet_rows(root, 3 if quick else steps, 16 if quick else 64, size, quick)
    return rows


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.representations")
    parser.add_argument("--steps", type=int, default=20, help="logged steps for ResNet50")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run")
    args = parser.parse_args(argv)
    print(f"before: {machine_description()}")
    rows = run(args.steps, args.quick)
    print(f"after: {machine_description()}")
    print(table_markdown(rows))


if __name__ == "__main__":
    main()
