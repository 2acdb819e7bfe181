"""Layer activations for a batch of images, for notebooks after training."""

from __future__ import annotations

import keras
import numpy as np

from vizcallbacks.compute.cache import built_for
from vizcallbacks.compute.forward import ActivationExtractor
from vizcallbacks.compute.layers import LayerSelection, select_layers
from vizcallbacks.compute.probe import read_probe

__all__ = ["layer_activations"]


def layer_activations(
    model: keras.Model, images: np.ndarray, layers: LayerSelection = None
) -> dict[str, np.ndarray]:
    """Outputs of ``layers`` (all by default) for ``images``: one sample or a batch of them.

    Returns ``{layer name: float32 (N, ...)}`` in forward order; nested models' layers are named
    ``outer/inner``, a layer called twice ``name`` and ``name_2``; a custom block or nested model
    gives its own output too, after its layers'. A model with several inputs
    takes a tuple or dict of arrays. One forward pass of the model itself, in inference mode,
    compiled on the first call and kept with the model for the next ones.
    """
    probe = read_probe(images, model)
    key = ("activations", None if layers is None else tuple(layers), probe.shape[1:])
    extract = built_for(
        model, key, lambda: ActivationExtractor(model, select_layers(model, layers, blocks=True))
    )
    return extract(probe)
