"""Which layer should the CAMs explain by default? ``python -m benchmarks.cam_layer [--out FILE]``.

The experiments' Fashion-MNIST models (fashion_cnn, lenet5, mnist_conv10 trained on Fashion-MNIST
here) are trained 2 epochs on 12,000 images; Grad-CAM, Grad-CAM++ and LayerCAM of 200 test images
are scored by deletion (lower is better) and insertion (higher is better) AUC at 20 steps, for
the last 4-D layer (a pooling layer) and for the last 4-D layer before the trailing pooling (the
last convolution's output). About 2 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import keras

import vizcallbacks as vc
from benchmarks.common import progress
from experiments import fashion_cnn, lenet5, mnist_conv10
from experiments.datasets import load_arrays, scaled

__all__ = ["LAYERS", "main"]

# model → (the last 4-D layer, the last convolution's output)
LAYERS = {
    "fashion_cnn": ("pool2", "conv2"),
    "lenet5": ("pool2", "relu2"),
    "mnist_conv10": ("conv10", "conv10"),
}
BUILDERS = {
    "fashion_cnn": fashion_cnn.build_model,
    "lenet5": lenet5.build_model,
    "mnist_conv10": mnist_conv10.build_model,
}
CAMS = {
    "grad_cam": vc.grad_cam,
    "grad_cam_plus_plus": vc.grad_cam_plus_plus,
    "layer_cam": vc.layer_cam,
}


def main(argv: Sequence[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", help="write the markdown table here too")
    parser.add_argument(
        "--data", default="/usr/share/datasets/fashion-mnist", help="Fashion-MNIST (IDX or npz)"
    )
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(0)
    split = load_arrays(args.data)  # offline: no download attempt
    x, y = scaled(split.x_train[:12000]), split.y_train[:12000]
    probe = scaled(split.x_test[:200])
    lines = [
        "| model | method | layer | deletion AUC ↓ | insertion AUC ↑ |",
        "|---|---|---|---|---|",
    ]
    for name, build in BUILDERS.items():
        model = build()
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        model.fit(x, y, epochs=2, batch_size=128, verbose=0)
        for method, cam in CAMS.items():
            for layer in dict.fromkeys(LAYERS[name]):
                maps = cam(model, probe, layer=layer)
                deletion = vc.deletion_curve(model, probe, maps).auc.mean()
                insertion = vc.insertion_curve(model, probe, maps).auc.mean()
                lines.append(f"| {name} | {method} | {layer} | {deletion:.3f} | {insertion:.3f} |")
                progress(lines[-1])
    table = "\n".join(lines)
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")
    return table


if __name__ == "__main__":
    main()
