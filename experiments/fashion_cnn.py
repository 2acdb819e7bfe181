"""fashion_cnn: the 7-layer Fashion-MNIST CNN (243,786 parameters), every class in one probe.

``python -m experiments.fashion_cnn`` trains 5 epochs with Adam (about 0.90 test accuracy) and
logs feature maps, Grad-CAM and every attribution method (with the sanity check) for test image
2000 (a bag) and the first test image of each class.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
from keras import layers

import vizcallbacks as vc
from experiments import common
from experiments.datasets import FASHION_CLASSES, ImageSplit, load_fashion_mnist, scaled

__all__ = ["build_model", "main", "probe"]

NAME = "fashion_cnn"


def build_model() -> keras.Model:
    """Conv 64 3x3, MaxPool, Conv 64 3x3, MaxPool, Flatten, Dense 128, Dense 10 on 28x28x1."""
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            layers.Conv2D(64, 3, activation="relu", name="conv1"),
            layers.MaxPooling2D(2, name="pool1"),
            layers.Conv2D(64, 3, activation="relu", name="conv2"),
            layers.MaxPooling2D(2, name="pool2"),
            layers.Flatten(name="flatten"),
            layers.Dense(128, activation="relu", name="dense"),
            layers.Dense(10, activation="softmax", name="probs"),
        ],
        name=NAME,
    )


def probe(split: ImageSplit, image_id: int = 2000) -> tuple[np.ndarray, list[str]]:
    """Test image ``image_id`` plus the first test image of each class, and their names.

    Names are class slugs (``tshirt``...), the first one suffixed with its index (``bag_2000``).
    When ``image_id`` is not in the split (a user's ``--data``), its first test image is used.
    """
    ids = list(split.test_ids)
    first = ids.index(image_id) if image_id in ids else 0
    picks = [first] + [int(np.argmax(split.y_test == c)) for c in np.unique(split.y_test)]
    names = [FASHION_CLASSES[int(split.y_test[i])] for i in picks]
    names[0] = f"{names[0]}_{int(split.test_ids[first])}"
    return scaled(split.x_test[picks]), names


def main(argv: Sequence[str] | None = None) -> common.RunResult:
    args = common.parse_args(
        NAME,
        argv,
        epochs=5,
        description=__doc__.splitlines()[0],
        data_help="folder with the four Fashion-MNIST .gz files, or an .npz (x_train, y_train, "
        "x_test, y_test); default: Keras' download, the Debian package, the shipped subset",
    )
    run = common.Run(NAME, args)
    full = load_fashion_mnist(args.data)
    images, names = probe(full)
    split = full.limit(args.max_samples)
    model = build_model()
    loggers = [
        vc.ActivationLogger(images, run.writers, probe_names=names),
        vc.FilterLogger(run.writers),
        vc.GradCAMLogger(images, run.writers, class_names=FASHION_CLASSES, probe_names=names),
        vc.AttributionLogger(
            images, run.writers, class_names=FASHION_CLASSES, probe_names=names, sanity_check=True
        ),
    ]
    return common.train_classifier(run, model, split, loggers)


if __name__ == "__main__":
    common.cli(main)
