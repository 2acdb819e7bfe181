"""Cost per logged step on the Keras backend in use, for the Backends table of docs/performance.md:
``KERAS_BACKEND=jax python -m benchmarks.backends [--steps 6] [--pairs 2]``.

The Fashion-MNIST CNN with the demo's ActivationLogger, FilterLogger and GradCAMLogger on its 11
probes, writing to TensorBoard + MLflow, through ``benchmarks.steps``' hook loop: process CPU
(``resource.getrusage``, every thread) over a baseline loop, per logged step, beside the wall
time per settled step; ``on_epoch_end`` alone (the forward pass and Grad-CAM: the part the
backend runs; drawing and writing are the same numpy code on every backend); and the CPU of the
first ``on_train_begin`` (compiling the passes, step 0).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path

import keras

from benchmarks.common import median
from benchmarks.steps import StepCost, demo, step_cost

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> dict[str, float | str]:
    """Measure, print one JSON line and one Markdown row, and return the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=6, help="logged steps per loop")
    parser.add_argument("--pairs", type=int, default=2, help="baseline/logged loop pairs")
    args = parser.parse_args(argv)

    from experiments.datasets import load_fashion_mnist
    from experiments.fashion_cnn import build_model, probe

    images, names = probe(load_fashion_mnist())
    model = build_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    cost = StepCost("demo")
    with tempfile.TemporaryDirectory() as root:
        for pair in range(args.pairs):
            step_cost(cost, model, demo(images, names), Path(root), args.steps, pair)
    result: dict[str, float | str] = {
        "backend": keras.backend.backend(),
        "cpu_ms_per_step": round(1000 * median(cost.per_step), 1),
        "wall_ms_per_step": round(1000 * median(cost.wall), 1),
        "on_epoch_end_cpu_ms": round(1000 * median(cost.blocking_cpu), 1),  # the backend's part
        "on_epoch_end_wall_ms": round(1000 * median(cost.blocking), 1),
        "first_setup_cpu_s": round(cost.begin[0], 2),  # later pairs reuse the compiled passes
    }
    print(json.dumps(result))
    print("| " + " | ".join(str(value) for value in result.values()) + " |")
    return result


if __name__ == "__main__":
    main()
