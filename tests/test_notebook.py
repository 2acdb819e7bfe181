"""The notebook functions keep their compiled step with the model: a repeated call traces
nothing, and the model is still freed when the notebook lets go of it."""

from __future__ import annotations

import gc
import weakref

import numpy as np

import vizcallbacks as vc
from tests import models
from vizcallbacks.compute.cache import built_for


def test_repeated_calls_reuse_one_compiled_step(digits) -> None:
    model = models.functional()
    images = digits[0][:5]
    first = vc.grad_cam(model, images)
    for _ in range(3):
        np.testing.assert_array_equal(vc.grad_cam(model, images), first)
        vc.layer_activations(model, images[:2])  # another batch size: no new program either
        vc.layer_activations(model, images)
    cam = built_for(model, ("grad_cam", None, (16, 16, 1)), lambda: None)
    assert cam is not None and cam._function.experimental_get_tracing_count() == 1
    extract = built_for(model, ("activations", None, (16, 16, 1)), lambda: None)
    assert extract is not None and extract._forward.experimental_get_tracing_count() <= 2
    # Weights are read fresh: conv_a (linear, zero bias) with its kernel doubled doubles its maps.
    before = vc.layer_activations(model, images)["conv_a"]
    model.get_layer("conv_a").kernel.assign(model.get_layer("conv_a").kernel * 2.0)
    after = vc.layer_activations(model, images)["conv_a"]
    np.testing.assert_allclose(after, 2.0 * before, rtol=1e-5, atol=1e-6)


def test_the_cache_goes_away_with_the_model(digits) -> None:
    model = models.functional()
    vc.grad_cam(model, digits[0][:2])
    vc.layer_activations(model, digits[0][:2])
    gone = weakref.ref(model)
    del model
    gc.collect()
    assert gone() is None
