"""Every place vizcallbacks relies on Keras internals or on behaviour Keras does not document.

Each function here is one seam; ``tests/test_keras_seams.py`` checks every one against the
installed Keras and names the seam and the Keras version when a release changes it. Code
elsewhere goes through these functions, never through the internals themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras

__all__ = [
    "SEAMS",
    "is_keras_layer",
    "kept_on",
    "restore_call",
    "swap_call",
    "tracked_sublayers",
]

# Each seam by name, with what vizcallbacks relies on; the test checks every one.
SEAMS = {
    "tracked_sublayers": "Layer._flatten_layers(include_self=False, recursive=False) lists a "
    "layer's direct sublayers (custom blocks, wrappers' inner layers)",
    "is_keras_layer": "Keras' own layer classes live in modules named keras.* (they are drawn "
    "as one layer, not opened)",
    "swap_call": "Layer.__call__ runs self.call looked up on the instance, so a function set "
    "there records each layer's output during the trace",
    "kept_on": "an attribute set with object.__setattr__ on a model is not tracked: no weight, "
    "no change to get_config",
    "shared_output": "a nested Functional model returns its last layer's output tensor itself "
    "(Recording.logits finds the logits of a nested classifier through it)",
    "kernel_layouts": "conv kernels are (..., in, out), transposed conv kernels (..., out, in), "
    "depthwise (kh, kw, in, multiplier) whatever data_format (filter_weights reads them)",
}

_ABSENT = object()


def tracked_sublayers(layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    """The layers ``layer`` holds directly, in the order it tracked them (attribute order).

    Keras 3 has no public accessor for a plain Layer's sublayers (``Model.layers`` is built
    on this private method).
    """
    return list(layer._flatten_layers(include_self=False, recursive=False))


def is_keras_layer(layer: keras.layers.Layer) -> bool:
    """True for a layer class Keras itself ships (``Conv2D``, ``MultiHeadAttention``...), told
    by its module (``keras.src...``); keras-hub's and the user's own layers are not."""
    return type(layer).__module__.split(".")[0] == "keras"


def swap_call(layer: keras.layers.Layer, call: Callable[..., Any]) -> object:
    """Make ``layer(...)`` run ``call`` instead of the class's ``call``; return what
    :func:`restore_call` needs to undo it.

    The function is stored on the instance, bypassing ``Layer.__setattr__`` (which would track
    it); ``Layer.__call__`` finds it because it calls ``self.call``.
    """
    before = layer.__dict__.get("call", _ABSENT)
    object.__setattr__(layer, "call", call)
    return before


def restore_call(layer: keras.layers.Layer, before: object) -> None:
    """Undo :func:`swap_call`: the layer's ``call`` is again what it was."""
    if before is _ABSENT:
        layer.__dict__.pop("call", None)
    else:
        layer.__dict__["call"] = before


def kept_on(model: keras.layers.Layer, name: str, make: Callable[[], Any]) -> Any:
    """The value kept on ``model`` as attribute ``name``, made by ``make()`` the first time.

    Stored with ``object.__setattr__``: Keras neither tracks it (no weight, not in
    ``get_config`` or a saved file) nor keeps it from being collected with the model.
    """
    value = model.__dict__.get(name, _ABSENT)
    if value is _ABSENT:
        value = make()
        object.__setattr__(model, name, value)
    return value
