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
    "all_layers",
    "ensure_built",
    "is_container",
    "leaf_layers",
    "select_layers",
    "sublayers",
]

LayerSelection = Sequence[str | int] | None


@dataclass(frozen=True)
class LayerRef:
    """One layer of a model: its path through nested models, the layer, and its tag-safe name."""

    path: tuple[str, ...]
    layer: keras.layers.Layer
    name: str


def sublayers(layer: keras.layers.Layer) -> list[keras.layers.Layer]:
    """The layers directly inside ``layer``: a model's ``layers``, a custom block's sublayers.

    Keras' own layers (``MultiHeadAttention``, ``Bidirectional``...) count as one layer, as
    before; a block the user wrote (a ``keras.layers.Layer`` subclass holding layers) is opened.
    """
    if isinstance(layer, keras.Model):
        return [la for la in layer.layers if not isinstance(la, keras.layers.InputLayer)]
    if type(layer).__module__.split(".")[0] == "keras":
        return []
    # Keras 3 has no public accessor for a plain Layer's tracked sublayers (Model.layers is
    # built on this one); this is the only private Keras attribute vizcallbacks uses.
    return list(layer._flatten_layers(include_self=False, recursive=False))


def is_container(layer: keras.layers.Layer) -> bool:
    """True for models used as layers and for custom blocks holding layers."""
    return isinstance(layer, keras.Model) or bool(sublayers(layer))


def _paths(
    model: keras.layers.Layer, prefix: tuple[str, ...], seen: set[int], containers: bool
) -> list[tuple[tuple[str, ...], keras.layers.Layer]]:
    found: list[tuple[tuple[str, ...], keras.layers.Layer]] = []
    for layer in sublayers(model):
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        path = (*prefix, layer.name)
        if is_container(layer):
            if containers:
                found.append((path, layer))
            found.extend(_paths(layer, path, seen, containers))
        else:
            found.append((path, layer))
    return found


def _leaf_paths(
    model: keras.layers.Layer, prefix: tuple[str, ...]
) -> list[tuple[tuple[str, ...], keras.layers.Layer]]:
    return _paths(model, prefix, set(), containers=False)


def all_layers(model: keras.layers.Layer) -> list[tuple[str, keras.layers.Layer]]:
    """``("outer/inner", layer)`` for every layer inside ``model``, containers included."""
    return [("/".join(path), layer) for path, layer in _paths(model, (), set(), True)]


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
        if isinstance(model, keras.Sequential):
            model.build((None, *input_shape[1:]))
        else:
            # A subclassed model has no build(): Keras would mark it built with no weights, and
            # its layers would then create them inside a traced function. One eager call builds
            # every layer as fit's first step would.
            model(keras.ops.zeros((1, *input_shape[1:])), training=False)
    except Exception as err:
        raise ValueError(
            f"The model is not built and could not be built for inputs of shape "
            f"{(None, *input_shape[1:])} taken from the probe ({err}). Give the model an "
            "explicit keras.Input(shape=...) or call model.build(input_shape) before fit."
        ) from err
