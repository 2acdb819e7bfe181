"""Checks on the probe image(s): shape, dtype and values, before the first training step."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import keras
import numpy as np

from vizcallbacks.tags import unique_safe_names

__all__ = ["check_probe", "check_probe_fits_model", "probe_tag_names"]

log = logging.getLogger("vizcallbacks")


def check_probe(probe: object) -> np.ndarray:
    """Return ``probe`` as float32 ``(N, H, W, C)``; one image ``(H, W, C)`` gets a batch axis.

    Raises ``TypeError`` for non-numeric data and ``ValueError`` for a wrong rank, an empty
    batch, or NaN/Inf values, each naming what was received.
    """
    array = np.asarray(probe)
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_
    ):
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
    if array.shape[0] == 0 or 0 in array.shape[1:]:
        raise ValueError(f"probe is empty. Received shape {array.shape}")
    array = array.astype(np.float32)
    if not np.isfinite(array).all():
        bad = int(np.count_nonzero(~np.isfinite(array)))
        raise ValueError(
            f"probe holds {bad} NaN or Inf values; pass a probe preprocessed like the training "
            "data, with finite values only."
        )
    return array


def check_probe_fits_model(probe: np.ndarray, model: keras.Model) -> None:
    """Raise ``ValueError`` naming the expected shape when ``probe`` cannot feed ``model``."""
    try:
        expected = tuple(model.inputs[0].shape[1:])
    except (AttributeError, ValueError, TypeError, IndexError):
        return  # a built subclassed model has no symbolic input to compare with
    received = probe.shape[1:]
    if len(expected) != len(received) or any(
        e is not None and e != r for e, r in zip(expected, received, strict=False)
    ):
        raise ValueError(
            f"probe images have shape {received} but the model expects inputs of shape "
            f"{expected} (batch axis left out). Pass one image (H, W, C) or a batch "
            "(N, H, W, C) preprocessed like the training data."
        )
    # Raw 0..255 pixels look like this; mean-subtracted inputs (VGG's "caffe" mode) go negative.
    if (
        float(probe.min()) >= 0.0
        and float(probe.max()) > 2.0
        and not any(
            isinstance(layer, (keras.layers.Rescaling, keras.layers.Normalization))
            for layer in model.layers
        )
    ):
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
