"""Input checks for the public array functions: numeric, the right rank, not empty."""

from __future__ import annotations

import numpy as np

__all__ = ["as_float_array", "check_positive_int", "is_real"]


def as_float_array(
    values: object, name: str, ndim: int | None = None, layout: str = ""
) -> np.ndarray:
    """``values`` as float32, or ``TypeError``/``ValueError`` naming ``name`` and what was expected.

    ``layout`` (for example ``"(H, W, C)"``) is quoted in the message when the rank is wrong.
    """
    array = np.asarray(values)
    if not is_real(array):
        raise TypeError(f"{name} must hold real numbers. Received dtype {array.dtype}")
    if ndim is not None and array.ndim != ndim:
        raise ValueError(
            f"{name} must have {ndim} dimensions {layout}. Received shape {array.shape}"
        )
    if array.size == 0:
        raise ValueError(f"{name} is empty. Received shape {array.shape}")
    return array.astype(np.float32, copy=False)


def is_real(array: np.ndarray, allow_bool: bool = True) -> bool:
    """True for arrays of real numbers: integers, floats (and booleans unless not allowed);
    False for complex numbers, strings and objects."""
    dtype = array.dtype
    if dtype == np.bool_:
        return allow_bool
    return bool(np.issubdtype(dtype, np.integer) or np.issubdtype(dtype, np.floating))


def check_positive_int(name: str, value: object) -> int:
    """Return ``value`` if it is an int ≥ 1, else raise naming the argument."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer ≥ 1. Received: {name}={value!r}")
    if value < 1:
        raise ValueError(f"{name} must be ≥ 1. Received: {name}={value}")
    return value
