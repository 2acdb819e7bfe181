"""Random shapes, dtypes and values into the public functions: a result, or a ValueError /
TypeError with a message, never anything else."""

from __future__ import annotations

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import vizcallbacks as vc
from vizcallbacks.tags import safe_name, unique_safe_names

DTYPES = st.sampled_from(
    [
        np.float32,
        np.float64,
        np.float16,
        np.int8,
        np.uint8,
        np.int64,
        np.bool_,
        np.complex64,
        np.str_,
        object,
    ]
)


def _arrays(max_dims: int = 5) -> st.SearchStrategy[np.ndarray]:
    shapes = hnp.array_shapes(min_dims=0, max_dims=max_dims, min_side=0, max_side=6)
    return DTYPES.flatmap(lambda dtype: shapes.map(lambda shape: _fill(dtype, shape)))


def _fill(dtype: object, shape: tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng(sum(shape) + len(shape))
    values = rng.normal(scale=1e3, size=shape)
    values[rng.random(shape) < 0.1] = np.nan
    values[rng.random(shape) < 0.05] = np.inf
    if dtype is np.str_:
        return values.astype(str)
    if dtype is object:
        return values.astype(object)
    with np.errstate(invalid="ignore", over="ignore"):
        return (
            np.nan_to_num(values).astype(dtype)
            if np.dtype(dtype).kind in "iub"
            else values.astype(dtype)
        )


def _outcome(fn, *args, **kwargs) -> object:
    try:
        return fn(*args, **kwargs)
    except (ValueError, TypeError) as err:
        assert str(err), f"{type(err).__name__} without a message"
        return err


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=_arrays(), count=st.integers(-2, 70))
def test_render_and_statistics(values: np.ndarray, count: int) -> None:
    for fn, kwargs in [
        (vc.tile_maps, {"max_channels": count}),
        (vc.tile_filters, {"max_filters": count}),
        (vc.activation_statistics, {}),
    ]:
        result = _outcome(fn, values, **kwargs)
        if isinstance(result, np.ndarray):
            assert result.dtype == np.uint8 and result.ndim == 3 and result.shape[2] == 3


@pytest.fixture(scope="module")
def tiny_model() -> keras.Model:
    inputs = keras.Input((6, 6, 2))
    x = keras.layers.Conv2D(3, 3, name="conv")(inputs)
    return keras.Model(inputs, keras.layers.Dense(2, name="out")(keras.layers.Flatten()(x)))


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    images=_arrays(),
    layers=st.one_of(
        st.none(),
        st.lists(st.one_of(st.integers(-6, 6), st.text(max_size=6), st.floats()), max_size=3),
    ),
)
def test_layer_activations(tiny_model: keras.Model, images: np.ndarray, layers) -> None:
    result = _outcome(vc.layer_activations, tiny_model, images, layers)
    if isinstance(result, dict):
        assert all(v.dtype == np.float32 and v.shape[0] == images.shape[0] for v in result.values())


@given(names=st.lists(st.text(), max_size=6))
def test_tag_names_are_safe_and_distinct(names: list[str]) -> None:
    safe = unique_safe_names((name,) for name in names)
    assert len(set(safe)) == len(safe)
    for name in map(safe_name, names):
        assert name and ".." not in name and "/" not in name
        assert all(c.isascii() and (c.isalnum() or c in "_-.") for c in name)
