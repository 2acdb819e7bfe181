"""Find, name and select the layers of a Keras model, nested models included."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

import keras

from vizcallbacks.tags import unique_safe_names

__all__ = [
    "LayerRef",
    "LayerSelection",
    "ensure_built",
    "is_traceable",
    "leaf_layers",
    "select_layers",
]

LayerSelection = Sequence[str | int] | None


@dataclass(frozen=True)
class LayerRef:
    """One layer of a model: its path through nested models, the layer, and its tag-safe name."""

    path: tuple[str, ...]
    layer: keras.layers.Layer
    name: str


def is_container(layer: keras.layers.Layer) -> bool:
    """True for models used as layers (Sequential, Functional, subclassed)."""
    return isinstance(layer, keras.Model)


def is_traceable(model: keras.layers.Layer) -> bool:
    """True when the layer's inner outputs can be reached: Sequential or Functional, recursively."""
    if isinstance(model, keras.Sequential):
        return all(is_traceable(layer) for layer in model.layers if is_container(layer))
    if isinstance(model, keras.Model):
        if not hasattr(model, "_run_through_graph"):
            return False
        return all(is_traceable(layer) for layer in model.layers if is_container(layer))
    return True


def _leaf_paths(
    model: keras.Model, prefix: tuple[str, ...]
) -> list[tuple[tuple[str, ...], keras.layers.Layer]]:
    found: list[tuple[tuple[str, ...], keras.layers.Layer]] = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        path = (*prefix, layer.name)
        if is_container(layer):
            found.extend(_leaf_paths(layer, path))
        else:
            found.append((path, layer))
    return found


def leaf_layers(model: keras.Model) -> list[LayerRef]:
    """Every non-input layer in forward order, nested models expanded into their own layers."""
    pairs = _leaf_paths(model, ())
    names = unique_safe_names(path for path, _ in pairs)
    return [LayerRef(path, layer, name) for (path, layer), name in zip(pairs, names, strict=True)]


def select_layers(model: keras.Model, layers: LayerSelection) -> list[LayerRef]:
    """Resolve ``layers`` (names, nested paths ``"vgg16/block1_conv1"`` or indices) to refs.

    An index means ``model.layers[index]``, as in ``model.get_layer(index=...)``; a nested model
    picked by index or name stands for all of its layers. ``None`` selects every leaf layer.
    """
    refs = leaf_layers(model)
    if layers is None:
        return refs
    if isinstance(layers, (str, int)):
        layers = [layers]
    chosen: list[LayerRef] = []
    for item in layers:
        if isinstance(item, bool) or not isinstance(item, (str, int)):
            raise TypeError(
                "layers must hold layer names or indices. "
                f"Received: {item!r} of type {type(item).__name__}"
            )
        if isinstance(item, int):
            n = len(model.layers)
            if not -n <= item < n:
                raise ValueError(
                    f"layers index {item} is out of range: the model has {n} layers "
                    f"(indices 0..{n - 1}, as in model.layers)."
                )
            target = model.layers[item]
            matches = [r for r in refs if r.layer is target or target.name == r.path[0]]
        else:
            matches = [r for r in refs if item in ("/".join(r.path), r.path[-1], r.path[0])]
        if not matches:
            known = list(
                dict.fromkeys(["/".join(r.path) for r in refs] + [r.path[-1] for r in refs])
            )
            close = difflib.get_close_matches(str(item), known, n=3, cutoff=0.6)
            hint = f" Closest names: {', '.join(close)}." if close else ""
            raise ValueError(
                f"layers={list(layers)!r}: the model has no layer named {item!r}."
                f"{hint} Layers: {', '.join('/'.join(r.path) for r in refs)}"
            )
        chosen.extend(r for r in matches if r not in chosen)
    return chosen


def ensure_built(model: keras.Model, input_shape: tuple[int, ...]) -> None:
    """Build ``model`` for inputs of ``input_shape`` (batch axis included) if it is not built.

    A Keras 3 ``Sequential`` without an ``Input`` is still unbuilt when ``fit`` calls
    ``on_train_begin``; building it here lets the callbacks check their probe first.
    """
    if model.built:
        return
    try:
        model.build((None, *input_shape[1:]))
    except Exception as err:
        raise ValueError(
            f"The model is not built and could not be built for inputs of shape "
            f"{(None, *input_shape[1:])} taken from the probe ({err}). Give the model an "
            "explicit keras.Input(shape=...) or call model.build(input_shape) before fit."
        ) from err
