"""Find, name and select the layers of a Keras model, nested models included."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

import keras

from vizcallbacks.compute.keras_seams import is_keras_layer, tracked_sublayers
from vizcallbacks.tags import unique_safe_names

__all__ = [
    "LayerRef",
    "LayerSelection",
    "all_layers",
    "ensure_built",
    "is_container",
    "leaf_layers",
    "network_layers",
    "select_layers",
    "sublayers",
    "with_inner_layers",
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
    if is_keras_layer(layer):
        return []
    return tracked_sublayers(layer)


def is_container(layer: keras.layers.Layer) -> bool:
    """True for models used as layers and for custom blocks holding layers."""
    return isinstance(layer, keras.Model) or bool(sublayers(layer))


def _paths(
    model: keras.layers.Layer, prefix: tuple[str, ...], seen: set[int], containers: bool
) -> list[tuple[tuple[str, ...], keras.layers.Layer]]:
    """Paths and layers inside ``model``; with ``containers``, each container after its own."""
    found: list[tuple[tuple[str, ...], keras.layers.Layer]] = []
    for layer in sublayers(model):
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        path = (*prefix, layer.name)
        if is_container(layer):
            found.extend(_paths(layer, path, seen, containers))
            if containers:
                found.append((path, layer))
        else:
            found.append((path, layer))
    return found


def all_layers(model: keras.layers.Layer) -> list[tuple[str, keras.layers.Layer]]:
    """``("outer/inner", layer)`` for every layer inside ``model``, containers included (each
    after the layers it holds)."""
    return [("/".join(path), layer) for path, layer in _paths(model, (), set(), True)]


def leaf_layers(model: keras.Model) -> list[LayerRef]:
    """Every non-input layer in forward order, nested models expanded into their own layers."""
    pairs = _paths(model, (), set(), containers=False)
    names = unique_safe_names(path for path, _ in pairs)
    return [LayerRef(path, layer, name) for (path, layer), name in zip(pairs, names, strict=True)]


def network_layers(model: keras.Model) -> list[LayerRef]:
    """:func:`leaf_layers` with the blocks around them: each custom block and nested model
    right after the layers it holds, so its output follows theirs. Leaves keep their names."""
    pairs = _paths(model, (), set(), containers=True)
    leaves = {id(ref.layer): ref for ref in leaf_layers(model)}
    blocks = [(path, layer) for path, layer in pairs if id(layer) not in leaves]
    taken = [ref.path for ref in leaves.values()]
    names = unique_safe_names([*taken, *(path for path, _ in blocks)])[len(taken) :]
    block_refs = {
        id(layer): LayerRef(path, layer, name)
        for (path, layer), name in zip(blocks, names, strict=True)
    }
    return [leaves.get(id(layer)) or block_refs[id(layer)] for _, layer in pairs]


def with_inner_layers(refs: list[LayerRef]) -> list[LayerRef]:
    """``refs`` with, after each of Keras' own layers that wraps others (``TimeDistributed``,
    ``Bidirectional``), the layers inside it, named ``wrapper/inner``."""
    found: list[LayerRef] = []
    for ref in refs:
        found.append(ref)
        if is_keras_layer(ref.layer) and not isinstance(ref.layer, keras.Model):
            inner = tracked_sublayers(ref.layer)
            names = unique_safe_names((ref.name, la.name) for la in inner)
            found += with_inner_layers(
                [
                    LayerRef((*ref.path, la.name), la, name)
                    for la, name in zip(inner, names, strict=True)
                ]
            )
    return found


def select_layers(
    model: keras.Model, layers: LayerSelection, blocks: bool = False
) -> list[LayerRef]:
    """Resolve ``layers`` (names, nested paths ``"vgg16/block1_conv1"`` or indices) to refs.

    An index means ``model.layers[index]``, as in ``model.get_layer(index=...)``; a nested model
    or block picked by index, name or path stands for all of its layers. ``None`` selects every
    leaf layer; ``blocks`` adds the blocks themselves (see :func:`network_layers`).
    """
    refs = network_layers(model) if blocks else leaf_layers(model)
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
            named = [r for r in refs if r.layer is target or target.name == r.path[0]]
        else:
            named = [r for r in refs if item in ("/".join(r.path), r.path[-1], r.path[0])]
            named += [r for r in refs if "/".join(r.path).startswith(f"{item}/")]
        matches = _with_contents(refs, named)
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


def _with_contents(refs: list[LayerRef], named: list[LayerRef]) -> list[LayerRef]:
    """The ``named`` refs and every ref inside a named container, in the order of ``refs``."""
    inside = [r.path for r in named if is_container(r.layer)]
    return [r for r in refs if r in named or any(r.path[: len(path)] == path for path in inside)]


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
