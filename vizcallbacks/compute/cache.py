"""Built computations kept with their model, so a notebook's repeated call is one compiled run.

The cache lives on the model object itself (outside Keras' attribute tracking), so it goes
away with the model: nothing here keeps a model alive.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any, TypeVar

import keras

from vizcallbacks.compute.keras_seams import kept_on

__all__ = ["built_for"]

T = TypeVar("T")
_ATTRIBUTE = "_vizcallbacks_built"


def built_for(model: keras.Model, key: Hashable, build: Callable[[], T]) -> T:
    """The object ``build()`` made for ``model`` and ``key`` before, or a new one, kept."""
    cache: dict[Hashable, Any] = kept_on(model, _ATTRIBUTE, dict)
    if key not in cache:
        cache[key] = build()
    return cache[key]
