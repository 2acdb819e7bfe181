"""Faithfulness per logged step against Xplique: ``python -m benchmarks.faithfulness [--out FILE]``.

The Fashion-MNIST CNN of ``experiments.fashion_cnn`` (trained one epoch on 6,000 images), 11
probe images, the maps of all 10 methods: deletion and insertion at 20 steps for every method
and the random maps (5,082 curve points), scored and turned into records (scalars and the curves
picture) as ``AttributionLogger(faithfulness=("deletion", "insertion"))`` adds to a step; beside
Xplique 2.0.2's ``Deletion`` and ``Insertion`` (from the same blur, batch 256) for the 10
methods, on TensorFlow. Median of 3 after a warm-up, wall and process CPU (every thread); the
images the model was given per step are printed. About 2 minutes on 2 cores (``--no-peer``:
half a minute). TensorFlow on AMD CPUs leaves oneDNN off unless ``TF_ENABLE_ONEDNN_OPTS=1``.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np

from benchmarks.common import (
    Clock,
    Row,
    judged,
    machine_description,
    measured,
    progress,
    table_markdown,
)
from experiments import fashion_cnn
from experiments.datasets import load_arrays, scaled

__all__ = ["main"]

REPEATS = 3
STEPS = 20


def _timed(job: Callable[[], Any]) -> tuple[list[float], list[float]]:
    job()  # warm-up: traces and compiles
    walls, cpus = [], []
    for _ in range(REPEATS):
        with Clock() as clock:
            job()
        walls.append(clock.wall)
        cpus.append(clock.cpu)
    return walls, cpus


def _xplique(
    model: keras.Model, probe: np.ndarray, maps: dict[str, np.ndarray], classes: np.ndarray
) -> Callable[[], Any] | None:
    try:
        from xplique.metrics import Deletion, Insertion
    except Exception as err:  # not installed
        progress(f"Xplique not compared: {type(err).__name__}: {str(err)[:120]}")
        return None
    from vizcallbacks.compute.attribution.faithfulness import blurred

    targets = keras.utils.to_categorical(classes, 10)

    def job() -> None:
        for values in maps.values():
            Deletion(model, probe, targets, batch_size=256, steps=STEPS).evaluate(values)
            Insertion(
                model, probe, targets, batch_size=256, steps=STEPS, baseline_mode=blurred
            ).evaluate(values)

    return job


def main(argv: Sequence[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", help="write the markdown table here too")
    parser.add_argument("--no-peer", action="store_true", help="leave Xplique's timing out")
    parser.add_argument(
        "--data", default="/usr/share/datasets/fashion-mnist", help="Fashion-MNIST (IDX or npz)"
    )
    args = parser.parse_args(argv)
    from vizcallbacks.compute.attribution.faithfulness import faithfulness_of
    from vizcallbacks.compute.attribution.methods import ALL_METHODS, build_method, method_options
    from vizcallbacks.compute.attribution.perturbed import scorer
    from vizcallbacks.compute.backend import backend
    from vizcallbacks.views.attribution import faithfulness_records

    keras.utils.set_random_seed(0)
    split = load_arrays(args.data)
    model = fashion_cnn.build_model()
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(scaled(split.x_train[:6000]), split.y_train[:6000], epochs=1, verbose=0)
    probe, _ = fashion_cnn.probe(split)
    options = method_options(ALL_METHODS)
    maps = {
        name: build_method(name, opts, model, probe, None, None)(probe, None).heatmaps
        for name, opts in options.items()
    }
    scores = scorer(model, probe.shape[1:], None)
    classes = scores.classes(probe, None)
    metrics = ("deletion", "insertion")
    before = scores.images_scored
    faithfulness_records(faithfulness_of(scores, probe, maps, classes, metrics, STEPS))
    images = scores.images_scored - before
    walls, cpus = _timed(
        lambda: faithfulness_records(faithfulness_of(scores, probe, maps, classes, metrics, STEPS))
    )
    what = f"deletion + insertion, {STEPS} steps, 10 methods + random, 11 probes"
    rows = [
        judged(f"{what}, vizcallbacks on {backend()}: CPU per logged step", cpus, "s", 1.0),
        measured(f"{what}, vizcallbacks on {backend()}: wall per logged step", walls, "s"),
        measured(f"{what}: images through the model per step (of 5,082)", [images], "images"),
    ]
    progress(f"vizcallbacks: {np.median(walls):.2f} s wall, {np.median(cpus):.2f} s CPU")
    peer = (
        None if args.no_peer or backend() != "tensorflow" else _xplique(model, probe, maps, classes)
    )
    if peer is not None:
        peer_walls, peer_cpus = _timed(peer)
        what = f"deletion + insertion, {STEPS} steps, 10 methods, 11 probes, Xplique 2.0.2"
        rows.append(measured(f"{what}: CPU", peer_cpus, "s"))
        rows.append(measured(f"{what}: wall", peer_walls, "s"))
        progress(f"Xplique: {np.median(peer_walls):.2f} s wall, {np.median(peer_cpus):.2f} s CPU")
        ratio = float(np.median(peer_cpus) / np.median(cpus))
        rows.append(measured("Xplique's CPU over vizcallbacks' for the same curves", [ratio], "x"))
    onednn = os.environ.get("TF_ENABLE_ONEDNN_OPTS", "unset")
    description = (
        f"{machine_description()}; Keras backend {backend()}, TF_ENABLE_ONEDNN_OPTS={onednn}"
    )
    table = f"{description}\n\n{table_markdown(rows)}"
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")
    return rows


if __name__ == "__main__":
    main()
