"""A fixed labelled batch ``(x, y)`` or ``(x, y, sample_weight)``, checked against the model
before the first training step: the structures ``fit`` takes, one batch size, finite numbers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from vizcallbacks.arrays import is_real

__all__ = ["LabelledBatch", "check_batch", "check_batch_fits_model"]


@dataclass(frozen=True)
class LabelledBatch:
    """``x`` and ``y`` as ``fit`` takes them (an array, a list or a dict of arrays), the optional
    per-example ``sample_weight``, and the batch size they share."""

    x: Any
    y: Any
    sample_weight: np.ndarray | None
    size: int

    def head(self, n: int) -> LabelledBatch:
        """The first ``n`` examples: a cheap batch for the check before training."""
        cut = keras.tree.map_structure(lambda a: a[:n], (self.x, self.y))
        weight = None if self.sample_weight is None else self.sample_weight[:n]
        return LabelledBatch(cut[0], cut[1], weight, min(n, self.size))


def check_batch(batch: object) -> LabelledBatch:
    """``batch`` as a :class:`LabelledBatch`, or ``TypeError``/``ValueError`` naming the part at
    fault (``batch x``, ``batch y``, ``batch sample_weight``), what was received and the fix."""
    if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
        raise TypeError(
            "batch must be a tuple (x, y) or (x, y, sample_weight), as model.fit takes them. "
            f"Received {type(batch).__name__}"
            + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else "")
        )
    x, y = (_arrays(part, f"batch {name}") for part, name in zip(batch[:2], "xy", strict=True))
    sizes = {
        f"batch {name} {path}": leaf.shape[0]
        for name, part in (("x", x), ("y", y))
        for path, leaf in _leaves(part)
    }
    if len(set(sizes.values())) != 1:
        raise ValueError(
            "every array of batch must hold the same number of examples (first axis). Received "
            + ", ".join(f"{key}: {n}" for key, n in sizes.items())
        )
    size = next(iter(sizes.values()))
    weight = None
    if len(batch) == 3 and batch[2] is not None:
        weight = np.asarray(batch[2])
        if not is_real(weight, allow_bool=False) or weight.shape != (size,):
            raise ValueError(
                f"batch sample_weight must be {size} real numbers, one per example. Received "
                f"dtype {weight.dtype}, shape {weight.shape}"
            )
        weight = weight.astype(np.float32)
        if not np.isfinite(weight).all() or (weight < 0).any():
            raise ValueError("batch sample_weight must hold finite values ≥ 0.")
    return LabelledBatch(x, y, weight, size)


def _arrays(part: Any, what: str) -> Any:
    """``part`` with every leaf a numeric numpy array of rank ≥ 1 holding at least one example;
    floats as float32 and finite."""
    if part is None:
        raise ValueError(f"{what} is None. Pass arrays, as model.fit takes them.")

    def one(leaf: Any) -> np.ndarray:
        array = np.asarray(leaf)
        if not is_real(array):
            raise TypeError(f"{what} must hold numbers. Received dtype {array.dtype}")
        if array.ndim == 0 or array.shape[0] == 0:
            raise ValueError(
                f"{what} must hold a batch of at least one example (first axis). Received shape "
                f"{array.shape}"
            )
        if np.issubdtype(array.dtype, np.floating):
            array = array.astype(np.float32)
            if not np.isfinite(array).all():
                raise ValueError(f"{what} holds NaN or Inf; pass finite values only.")
        return array

    if isinstance(part, Mapping):
        return {str(k): one(v) for k, v in part.items()}
    if isinstance(part, (tuple, list)) and part and all(hasattr(p, "shape") for p in part):
        return [one(p) for p in part]  # one array per model input or output
    return one(part)


def _leaves(part: Any) -> list[tuple[str, np.ndarray]]:
    if isinstance(part, Mapping):
        return [(repr(k), v) for k, v in part.items()]
    if isinstance(part, list):
        return [(str(i), v) for i, v in enumerate(part)]
    return [("", part)]


def check_batch_fits_model(batch: LabelledBatch, model: keras.Model) -> None:
    """``ValueError`` naming the input, the shape received and the one expected when ``batch x``
    cannot feed ``model`` (a subclassed model without symbolic inputs is not checked here)."""
    try:
        inputs = list(model.inputs)
    except (AttributeError, ValueError, TypeError):
        return
    if not inputs:
        return
    names = [t.name for t in inputs]
    expected = ", ".join(f"{t.name!r} {tuple(t.shape[1:])}" for t in inputs)
    x = batch.x
    if isinstance(x, Mapping):
        if sorted(x) != sorted(names):
            raise ValueError(
                f"batch x keys {sorted(x)} must be the model's input names {names} ({expected})."
            )
        pairs = [(name, x[name], t) for name, t in zip(names, inputs, strict=True)]
    else:
        fed = x if isinstance(x, list) else [x]
        if len(fed) != len(inputs):
            raise ValueError(
                f"batch x holds {len(fed)} input array(s) but the model has {len(inputs)} inputs "
                f"({expected}): pass one array per input, in a list or a dict keyed by name."
            )
        pairs = [(t.name, a, t) for a, t in zip(fed, inputs, strict=True)]
    for name, array, tensor in pairs:
        want = tuple(tensor.shape[1:])
        got = array.shape[1:]
        if len(want) != len(got) or any(
            w is not None and w != g for w, g in zip(want, got, strict=True)
        ):
            raise ValueError(
                f"batch x for input {name!r} has shape {got} per example but the model expects "
                f"{want} (batch axis left out). Pass examples preprocessed like the training data."
            )
        dtype = str(getattr(tensor, "dtype", "float32"))
        integral = "int" in dtype or dtype == "bool"
        if integral and np.issubdtype(array.dtype, np.floating) and (array % 1 != 0).any():
            raise ValueError(
                f"batch x for input {name!r} holds fractions but that input is {dtype}."
            )
