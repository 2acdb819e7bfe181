"""The one probe reader of every logger and notebook function: values checked when given, the batch
axis settled against the model's inputs (one sample or a batch), before the first training step.

A probe is one array or, for a model with several inputs, a tuple, list or dict of arrays (the
structures ``fit`` takes). Each array is one sample without its batch axis or a batch of samples;
the model's input rank tells which, so signals ``(T, C)``, images ``(H, W, C)``, volumes and
videos ``(D, H, W, C)`` are all read right. A probe whose shape the model cannot take is refused
by :func:`probe_shape_error`, the same message whichever logger reads it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np

from vizcallbacks.arrays import is_real
from vizcallbacks.compute.layers import all_layers, ensure_built
from vizcallbacks.tags import unique_safe_names

__all__ = [
    "GivenProbe",
    "ProbeInputs",
    "given_probe",
    "probe_inputs",
    "probe_shape_error",
    "probe_tag_names",
    "provisional_probe",
    "read_probe",
]

log = logging.getLogger("vizcallbacks")

# A probe as given, checked but not yet batched: one array, or one array per model input.
GivenProbe = np.ndarray | tuple[np.ndarray, ...] | dict[str, np.ndarray]


class ProbeInputs(np.ndarray):
    """The probe of a model with several inputs: as an array, its first input with a spatial
    axis (what gets drawn); ``inputs`` holds every input, batched, as a tuple or a dict."""

    inputs: tuple[np.ndarray, ...] | dict[str, np.ndarray] | None = None

    def __array_finalize__(self, obj: Any) -> None:
        self.inputs = None  # a slice or a computed array is only pixels


def given_probe(probe: object) -> GivenProbe:
    """``probe`` checked as given (numeric, finite, not empty; one array per input for several):
    float arrays as float32, the batch axis not yet settled. Raises ``TypeError``/``ValueError``
    naming what was received."""
    if isinstance(probe, ProbeInputs) and probe.inputs is not None:
        return probe.inputs
    if not _is_several(probe):
        return _values(probe, "probe")
    several: Any = probe
    items = list(several.items()) if isinstance(several, Mapping) else list(enumerate(several))
    given = {str(key): _values(value, f"probe input {key!r}") for key, value in items}
    if not given:
        raise ValueError("probe holds no input. Pass one array per model input.")
    return given if isinstance(probe, Mapping) else tuple(given.values())


def _is_several(probe: object) -> bool:
    """One array per model input: a tuple, a dict, or a list whose items do not stack."""
    if isinstance(probe, (tuple, Mapping)):
        return True
    if not isinstance(probe, list):
        return False
    try:
        return np.asarray(probe).dtype == object
    except ValueError:  # ragged: numpy refuses to stack
        return True


def _values(value: Any, what: str) -> np.ndarray:
    array = np.asarray(value)
    if not is_real(array):
        raise TypeError(f"{what} must be a numeric array. Received dtype {array.dtype}")
    if array.ndim == 0 or 0 in array.shape:
        raise ValueError(f"{what} is empty. Received shape {array.shape}")
    if not np.issubdtype(array.dtype, np.floating):
        return array
    values = array.astype(np.float32)
    if not np.isfinite(values).all():
        bad = int(np.count_nonzero(~np.isfinite(values)))
        raise ValueError(
            f"{what} holds {bad} NaN or Inf values; pass a probe preprocessed like the training "
            "data, with finite values only."
        )
    return values


def read_probe(probe: object, model: keras.Model | None = None) -> np.ndarray:
    """``probe`` with its batch axis, as ``model`` reads it: float32, or :class:`ProbeInputs` for
    several inputs. ``model`` is built if need be and its input ranks settle sample or batch;
    without a model (or before its inputs are known) a 3-D array is one image, anything larger
    a batch. Raises :func:`probe_shape_error` when the model cannot take the probe."""
    given = given_probe(probe)
    inputs = _model_inputs(model)
    if not isinstance(given, np.ndarray):
        return _read_inputs(given, inputs, model)
    if inputs is not None and len(inputs) > 1:
        raise ValueError(
            f"The model has {len(inputs)} inputs ({_describe(inputs)}): pass the "
            "probe as a tuple or a dict with one array per input."
        )
    batched = _batched(given, None if inputs is None else _shape(next(iter(inputs.values()))))
    if model is not None:
        ensure_built(model, batched.shape)
        if inputs is None and _model_inputs(model) is not None:  # built just now
            return read_probe(batched, model)
        _warn_raw_pixels(batched, model)
    return _floats(batched)


def provisional_probe(given: GivenProbe) -> np.ndarray:
    """``given`` with a batch axis before the model is known, for checks that cannot wait:
    several inputs by their first image input, a 4-D or 5-D array as a batch, anything smaller
    as one sample. :func:`read_probe` settles it against the model."""
    if not isinstance(given, np.ndarray):
        return _read_inputs(given, None, None)
    return given if given.ndim in (4, 5) else given[None]


def _batched(array: np.ndarray, shape: tuple[Any, ...] | None, what: str = "probe") -> np.ndarray:
    """``array`` with a batch axis: one sample when its rank is the input's, else a batch."""
    if shape is None:
        if array.ndim < 3:
            raise probe_shape_error(array.shape, None, what)
        return array[None] if array.ndim == 3 else array
    if array.ndim == len(shape) and _fits(array.shape, shape):
        return array[None]
    if array.ndim == len(shape) + 1 and _fits(array.shape[1:], shape):
        return array
    received = array.shape[1:] if array.ndim == len(shape) + 1 else array.shape
    raise probe_shape_error(received, shape, what)


def _fits(received: tuple[int, ...], expected: tuple[Any, ...]) -> bool:
    return len(received) == len(expected) and all(
        e is None or e == r for r, e in zip(received, expected, strict=True)
    )


def probe_shape_error(
    received: tuple[int, ...], expected: tuple[Any, ...] | None, what: str = "probe"
) -> ValueError:
    """The one refusal of a probe the model cannot take: the shape received, the shape expected
    and the fix. ``expected`` None: the model's input shape is not known yet."""
    if expected is None:
        return ValueError(
            f"{what} has shape {tuple(received)} and the model's input shape is not known until "
            "it is built, so it cannot be told whether this is one sample or a batch. Give the "
            "model keras.Input(shape=...), or pass a batch (N, ...) of samples."
        )
    hint = ""
    if len(expected) > 1 and tuple(received) == tuple(expected[:-1]):
        hint = "; its channel axis is missing: add it with [..., None]"
    return ValueError(
        f"{what} has shape {tuple(received)} but the model expects inputs of shape "
        f"{tuple(expected)} (batch axis left out). Pass one sample of that shape or a batch "
        f"(N, {', '.join(str(d) for d in expected)}), preprocessed like the training data{hint}."
    )


def _read_inputs(
    given: tuple[np.ndarray, ...] | dict[str, np.ndarray],
    inputs: dict[str, Any] | None,
    model: keras.Model | None,
) -> ProbeInputs:
    """Several inputs, each batched by its model input's rank; all one sample or all batches."""
    named = dict(given) if isinstance(given, dict) else {repr(i): a for i, a in enumerate(given)}
    if inputs is None:  # no input shapes: the first image input says sample or batch
        images = [key for key, a in named.items() if a.ndim in (3, 4)]
        if not images:
            raise ValueError(
                "probe needs an image input (H, W, C) or (N, H, W, C) among its inputs. Received "
                + ", ".join(f"{key}: {a.shape}" for key, a in named.items())
            )
        single = named[images[0]].ndim == 3
        batched = {key: a[None] if single else a for key, a in named.items()}
    else:
        paired = _paired(given, inputs)
        batched = {}
        for (key, a), (label, tensor) in zip(named.items(), paired.items(), strict=True):
            batched[key] = _batched(a, _shape(tensor), f"probe input {label}")
            _check_integral(batched[key], tensor, label)
    drawn = next((key for key, a in batched.items() if a.ndim >= 3), next(iter(batched)))
    n = batched[drawn].shape[0]
    one = named[drawn].ndim < batched[drawn].ndim
    for key, a in batched.items():
        if a.shape[0] != n:
            raise ValueError(
                f"probe input {key} has shape {named[key].shape} but input {drawn} is "
                f"{'one example' if one else f'a batch of {n}'}: give every input one example, "
                "or every input a batch of the same size."
            )
    if model is not None:
        ensure_built(model, batched[drawn].shape)
    result = _floats(batched[drawn]).view(ProbeInputs)
    result.inputs = batched if isinstance(given, dict) else tuple(batched.values())
    return result


def _paired(
    given: tuple[np.ndarray, ...] | dict[str, np.ndarray], inputs: dict[str, Any]
) -> dict[str, Any]:
    """The model input of each given input, by the label errors name it with; keys or counts
    that do not match the model's inputs are refused."""
    if isinstance(given, dict):
        if sorted(given) != sorted(inputs):
            raise ValueError(
                f"probe keys {sorted(given)} must be the model's input names {list(inputs)} "
                f"({_describe(inputs)})."
            )
        return {repr(key): inputs[key] for key in given}
    if len(given) != len(inputs):
        raise ValueError(
            f"probe holds {len(given)} inputs but the model has {len(inputs)} "
            f"({_describe(inputs)})."
        )
    return {repr(f"{i} ({name})"): t for i, (name, t) in enumerate(inputs.items())}


def _check_integral(array: np.ndarray, tensor: Any, label: str) -> None:
    dtype = str(getattr(tensor, "dtype", "float32"))
    integral = "int" in dtype or dtype == "bool"
    if integral and np.issubdtype(array.dtype, np.floating) and (array % 1 != 0).any():
        raise ValueError(f"probe input {label} holds fractions but the model's input is {dtype}.")


def _model_inputs(model: keras.Model | None) -> dict[str, Any] | None:
    """The model's symbolic inputs by name; None when it has none yet."""
    if model is None:
        return None
    try:
        inputs = list(model.inputs)
    except (AttributeError, ValueError, TypeError):
        return None  # an unbuilt Sequential, a subclassed model: no symbolic input
    return {str(t.name): t for t in inputs} or None


def _shape(tensor: Any) -> tuple[Any, ...]:
    return tuple(tensor.shape[1:])


def _describe(inputs: dict[str, Any]) -> str:
    return ", ".join(f"{name!r} {_shape(t)}" for name, t in inputs.items())


def _floats(array: np.ndarray) -> np.ndarray:
    return np.asarray(array, dtype=np.float32)


def probe_inputs(probe: Any) -> Any:
    """What to feed the model: the probe's inputs (a list or dict) or the single array."""
    inputs = getattr(probe, "inputs", None)
    if inputs is None:
        return np.asarray(probe)
    return dict(inputs) if isinstance(inputs, Mapping) else list(inputs)


def _warn_raw_pixels(probe: np.ndarray, model: keras.Model) -> None:
    # Raw 0..255 pixels look like this; mean-subtracted inputs (VGG's "caffe" mode) go negative.
    if float(probe.min()) < 0.0 or float(probe.max()) <= 2.0:
        return
    scaling = (keras.layers.Rescaling, keras.layers.Normalization)
    if any(isinstance(layer, scaling) for _, layer in all_layers(model)):
        return  # at any depth: EfficientNet inside a Sequential rescales inside
    log.warning(
        "vizcallbacks: the probe's values reach %.4g but the model has no Rescaling or "
        "Normalization layer; if the training data is scaled to [0, 1], scale the probe "
        "the same way (for example probe / 255).",
        float(probe.max()),
    )


def probe_tag_names(probe_names: Sequence[str] | None, n: int) -> list[str | None]:
    """What each probe adds to image tags: nothing for one probe, else its name or index.

    Names are made tag-safe here, and two names that would become the same (``cat?``, ``cat!``)
    get the layers' suffix rule (``cat_``, ``cat__2``), so no two probes share a tag.
    """
    if probe_names is not None and len(probe_names) != n:
        raise ValueError(
            f"probe_names needs one name per probe image ({n}). Received {len(probe_names)} names"
        )
    if n == 1:
        return [None]
    return list(unique_safe_names((str(p),) for p in (probe_names or range(n))))
