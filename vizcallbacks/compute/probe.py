"""Checks on the probe image(s): shape, dtype and values, before the first training step."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import keras
import numpy as np

from vizcallbacks.arrays import is_real
from vizcallbacks.compute.layers import all_layers
from vizcallbacks.tags import unique_safe_names

__all__ = [
    "ProbeInputs",
    "check_probe",
    "check_probe_fits_model",
    "is_several_inputs",
    "probe_inputs",
    "probe_tag_names",
    "probe_values",
]

log = logging.getLogger("vizcallbacks")


class ProbeInputs(np.ndarray):
    """The probe of a model with several inputs: as an array, its first image input (what gets
    drawn); ``inputs`` holds every input, batched, as a tuple or a dict of arrays."""

    inputs: tuple[np.ndarray, ...] | dict[str, np.ndarray] | None = None

    def __array_finalize__(self, obj: Any) -> None:
        self.inputs = None  # a slice or a computed array is only pixels


def check_probe(probe: object) -> np.ndarray:
    """Return ``probe`` as float32 ``(N, H, W, C)``; one image ``(H, W, C)`` gets a batch axis.

    A tuple or dict (one array per model input; a list whose items do not stack) gives a
    :class:`ProbeInputs`. Raises ``TypeError`` for non-numeric data and ``ValueError`` for a
    wrong rank, an empty batch, or NaN/Inf values, each naming what was received.
    """
    if is_several_inputs(probe):
        return _check_inputs(probe)
    return _check_image(probe, "probe")


def is_several_inputs(probe: object) -> bool:
    """True for one array per model input: a tuple, a dict, or a list whose items do not stack."""
    if isinstance(probe, (tuple, Mapping)):
        return True
    if not isinstance(probe, list):
        return False
    try:
        return np.asarray(probe).dtype == object
    except ValueError:  # ragged: numpy refuses to stack
        return True


def _check_inputs(probe: Any) -> ProbeInputs:
    """Each input of a multi-input probe checked; all are one example or all are batches,
    as the first image input (3-D: one example, 4-D: a batch) tells."""
    named = list(probe.items()) if isinstance(probe, Mapping) else list(enumerate(probe))
    if not named:
        raise ValueError("probe holds no input. Pass one array per model input.")
    arrays = {key: _numeric(value, f"probe input {key!r}") for key, value in named}
    images = [key for key, value in arrays.items() if value.ndim in (3, 4)]
    if not images:
        raise ValueError(
            "probe needs an image input (H, W, C) or (N, H, W, C) among its inputs. Received "
            + ", ".join(f"{key!r}: {value.shape}" for key, value in arrays.items())
        )
    single = arrays[images[0]].ndim == 3
    batched = {key: value[None] if single else value for key, value in arrays.items()}
    n = batched[images[0]].shape[0]
    for key, value in batched.items():
        if value.ndim == 0 or value.shape[0] != n:
            raise ValueError(
                f"probe input {key!r} has shape {arrays[key].shape} but input {images[0]!r} is "
                f"{'one example' if single else f'a batch of {n}'}: give every input "
                "one example, or every input a batch of the same size."
            )
        if value.size == 0:
            raise ValueError(f"probe input {key!r} is empty. Received shape {arrays[key].shape}")
    first = _check_image(batched[images[0]], f"probe input {images[0]!r}")
    result = first.view(ProbeInputs)
    inputs = {str(key): _as_input(value) for key, value in batched.items()}
    result.inputs = inputs if isinstance(probe, Mapping) else tuple(inputs.values())
    return result


def _numeric(value: Any, what: str) -> np.ndarray:
    array = np.asarray(value)
    if not is_real(array):
        raise TypeError(f"{what} must be a numeric array. Received dtype {array.dtype}")
    return array


def _as_input(array: np.ndarray) -> np.ndarray:
    if np.issubdtype(array.dtype, np.floating):
        array = array.astype(np.float32)
        if not np.isfinite(array).all():
            raise ValueError("probe inputs must hold finite values only (no NaN or Inf).")
    return array


def probe_inputs(probe: Any) -> Any:
    """What to feed the model: the probe's inputs (a list or dict) or the single array."""
    inputs = getattr(probe, "inputs", None)
    if inputs is None:
        return np.asarray(probe)
    return dict(inputs) if isinstance(inputs, Mapping) else list(inputs)


def _check_image(probe: object, what: str) -> np.ndarray:
    """``probe`` as float32 ``(N, H, W, C)``, checked; ``what`` names it in errors."""
    array = np.asarray(probe)
    if not is_real(array):
        raise TypeError(
            "probe must be a numeric array of images (H, W, C) or (N, H, W, C). "
            f"Received dtype {array.dtype}"
        )
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4:
        raise ValueError(
            "probe must be one image (H, W, C) or a batch (N, H, W, C), preprocessed like the "
            f"training data. Received shape {array.shape}; for a grayscale (H, W) image use "
            "probe[..., None]."
        )
    return probe_values(array)


def probe_values(array: np.ndarray) -> np.ndarray:
    """A probe of any rank as float32, or ``ValueError`` when it is empty or not finite."""
    if 0 in array.shape:
        raise ValueError(f"probe is empty. Received shape {array.shape}")
    values = array.astype(np.float32)
    if not np.isfinite(values).all():
        bad = int(np.count_nonzero(~np.isfinite(values)))
        raise ValueError(
            f"probe holds {bad} NaN or Inf values; pass a probe preprocessed like the training "
            "data, with finite values only."
        )
    return values


def check_probe_fits_model(probe: np.ndarray, model: keras.Model) -> None:
    """Raise ``ValueError`` naming the input and its expected shape when ``probe`` cannot feed
    ``model``; warn when raw pixels meet a model without Rescaling/Normalization (any depth)."""
    try:
        inputs = list(model.inputs)
    except (AttributeError, ValueError, TypeError):
        return  # a built subclassed model has no symbolic input to compare with
    if not inputs:
        return
    fed = getattr(probe, "inputs", None)
    if fed is None:
        if len(inputs) > 1:
            raise ValueError(
                f"The model has {len(inputs)} inputs ({_describe_inputs(inputs)}): pass the "
                "probe as a tuple or a dict with one array per input."
            )
        _check_shape(probe, inputs[0], None)
    else:
        _check_inputs_fit(fed, inputs)
    _warn_raw_pixels(np.asarray(probe), model)


def _describe_inputs(inputs: list[Any]) -> str:
    return ", ".join(f"{t.name!r} {tuple(t.shape[1:])}" for t in inputs)


def _check_inputs_fit(
    fed: tuple[np.ndarray, ...] | dict[str, np.ndarray], inputs: list[Any]
) -> None:
    if isinstance(fed, Mapping):
        names = [t.name for t in inputs]
        if sorted(fed) != sorted(names):
            raise ValueError(
                f"probe keys {sorted(fed)} must be the model's input names {names} "
                f"({_describe_inputs(inputs)})."
            )
        pairs = [(name, fed[name], t) for name, t in zip(names, inputs, strict=True)]
    else:
        if len(fed) != len(inputs):
            raise ValueError(
                f"probe holds {len(fed)} inputs but the model has {len(inputs)} "
                f"({_describe_inputs(inputs)})."
            )
        pairs = [
            (f"{i} ({t.name})", a, t) for i, (a, t) in enumerate(zip(fed, inputs, strict=True))
        ]
    for key, array, tensor in pairs:
        _check_shape(array, tensor, key)
        dtype = str(getattr(tensor, "dtype", "float32"))
        integral = "int" in dtype or dtype == "bool"
        if integral and np.issubdtype(array.dtype, np.floating) and (array % 1 != 0).any():
            raise ValueError(
                f"probe input {key!r} holds fractions but the model's input is {dtype}."
            )


def _check_shape(array: np.ndarray, tensor: Any, key: str | None) -> None:
    expected = tuple(tensor.shape[1:])
    received = array.shape[1:]
    if len(expected) != len(received) or any(
        e is not None and e != r for e, r in zip(expected, received, strict=False)
    ):
        if key is None:
            raise ValueError(
                f"probe images have shape {received} but the model expects inputs of shape "
                f"{expected} (batch axis left out). Pass one image (H, W, C) or a batch "
                "(N, H, W, C) preprocessed like the training data."
            )
        raise ValueError(
            f"probe input {key!r} has shape {received} but that model input expects "
            f"{expected} (batch axis left out)."
        )


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
