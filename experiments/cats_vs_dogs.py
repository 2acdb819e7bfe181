"""cats_vs_dogs: the classic small binary convnet (3,453,121 parameters) on a folder of images.

``--data DIR`` holds one sub-folder per class (``DIR/cats``, ``DIR/dogs``), read by Keras'
directory loader, rescaled by 1/255, batches of 20, 20 % held out for validation. With no
``--data``, real faces vs non-faces from scikit-image stand in for cats and dogs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import layers

import vizcallbacks as vc
from experiments import common
from experiments.folders import ImageFolder, binary_image_folder, image_datasets, load_images

__all__ = ["ATTRIBUTION_METHODS", "IMAGE_SIZE", "build_model", "class_probe", "main"]

NAME = "cats_vs_dogs"
IMAGE_SIZE = (150, 150)
BATCH_SIZE = 20
# At 150x150, 4-pixel occlusion patches would be 1,369 copies per image: 15-pixel ones are 100.
ATTRIBUTION_METHODS = {
    "saliency": {},
    "smoothgrad": {},
    "integrated_gradients": {},
    "occlusion": {"patch": 15},
    "grad_cam": {},
    "grad_cam_plus_plus": {},
    "layer_cam": {},
    "faster_score_cam": {},
}


def build_model() -> keras.Model:
    """Conv 32/64/128/128 3x3 each followed by MaxPool, Flatten, Dense 512, Dense 1 sigmoid."""
    model = keras.Sequential([keras.Input((*IMAGE_SIZE, 3))], name=NAME)
    for i, filters in enumerate((32, 64, 128, 128), start=1):
        model.add(layers.Conv2D(filters, 3, activation="relu", name=f"conv{i}"))
        model.add(layers.MaxPooling2D(2, name=f"pool{i}"))
    model.add(layers.Flatten(name="flatten"))
    model.add(layers.Dense(512, activation="relu", name="dense"))
    model.add(layers.Dense(1, activation="sigmoid", name="prob"))
    return model


def class_probe(val: Any, folder: ImageFolder) -> tuple[np.ndarray, list[str]]:
    """The first validation image of each class, as loaded (float32 in [0, 255]), and the class."""
    paths = [str(p) for p in val.file_paths]
    firsts = []
    for name in folder.class_names:
        firsts.append(next(p for p in paths if Path(p).relative_to(folder.root).parts[0] == name))
    return load_images(firsts, IMAGE_SIZE), list(folder.class_names)


def rescale(images: Any, labels: Any) -> tuple[Any, Any]:
    return images / 255.0, labels


def main(argv: Sequence[str] | None = None) -> common.RunResult:
    args = common.parse_args(
        NAME,
        argv,
        epochs=15,
        description=__doc__.splitlines()[0],
        data_help="folder with one sub-folder of images per class (two classes); default: "
        "scikit-image's real faces vs non-faces, written to ~/.cache/vizcallbacks",
    )
    run = common.Run(NAME, args)
    folder = binary_image_folder(args.data, args.max_samples)
    train, val = image_datasets(folder, IMAGE_SIZE, BATCH_SIZE)
    images, names = class_probe(val, folder)
    model = build_model()
    model.compile(
        optimizer=keras.optimizers.RMSprop(1e-4), loss="binary_crossentropy", metrics=["accuracy"]
    )
    loggers = [
        vc.ActivationLogger(images / 255.0, run.writers, probe_names=names),
        vc.FilterLogger(run.writers),
        vc.GradCAMLogger(
            images / 255.0, run.writers, class_names=folder.class_names, probe_names=names
        ),
        vc.AttributionLogger(
            images / 255.0,
            run.writers,
            ATTRIBUTION_METHODS,
            class_names=folder.class_names,
            probe_names=names,
        ),
    ]
    val = val.map(rescale)
    model.fit(
        train.map(rescale),
        epochs=args.epochs,
        shuffle=False,  # the directory loader reshuffles its files every epoch itself
        validation_data=val,
        callbacks=run.callbacks(*loggers),
    )
    _, accuracy = model.evaluate(val, verbose=0)
    return run.finish({"val_accuracy": float(accuracy)}, folder.describe())


if __name__ == "__main__":
    common.cli(main)
