"""Target 6: the notebook functions called again and again, against their peers.

``vc.grad_cam`` and ``vc.layer_activations`` on fashion_cnn with 11 probe images, median of 5
calls after a warm-up, wall and CPU. Peers: tf-keras-vis' ``Gradcam`` when it imports (with
Keras 3 only without its model modifier, so it explains the softmax score), tf-explain when it
imports (it needs OpenCV), and always the plain ``tf.GradientTape`` Grad-CAM of the Keras
example (sub-model built once, eager) and a multi-output sub-model's ``predict``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from benchmarks.common import Clock, Row, measured, progress

__all__ = ["notebook_rows", "repeated_calls"]


def repeated_calls(job: Callable[[], Any], repeats: int = 5) -> tuple[list[float], list[float]]:
    """Wall and CPU seconds of ``repeats`` calls of ``job`` after one warm-up call."""
    job()
    walls, cpus = [], []
    for _ in range(repeats):
        with Clock() as clock:
            job()
        walls.append(clock.wall)
        cpus.append(clock.cpu)
    return walls, cpus


def _last_spatial(model: keras.Model) -> str:
    return [la.name for la in model.layers if len(la.output.shape) == 4][-1]


def tape_grad_cam(model: keras.Model, layer: str) -> Callable[[np.ndarray], np.ndarray]:
    """Grad-CAM as the Keras example writes it: a two-output sub-model, eager GradientTape."""
    import tensorflow as tf

    grad_model = keras.Model(model.inputs, [model.get_layer(layer).output, *model.outputs])

    def cam(images: np.ndarray) -> np.ndarray:
        with tf.GradientTape() as tape:
            maps, preds = grad_model(images)
            top = tf.argmax(preds, axis=-1)
            score = tf.gather(preds, top, axis=1, batch_dims=1)
        grads = tape.gradient(score, maps)
        weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
        heat = tf.nn.relu(tf.reduce_sum(weights * maps, axis=-1))
        heat /= tf.reduce_max(heat, axis=(1, 2), keepdims=True) + 1e-8
        return tf.image.resize(heat[..., None], images.shape[1:3]).numpy()[..., 0]

    return cam


def _peers(model: keras.Model, images: np.ndarray, layer: str) -> dict[str, Callable[[], Any]]:
    jobs: dict[str, Callable[[], Any]] = {}
    try:
        from tf_keras_vis.gradcam import Gradcam
        from tf_keras_vis.utils.scores import CategoricalScore

        gradcam = Gradcam(model, clone=False)
        score = CategoricalScore(list(np.argmax(model.predict(images, verbose=0), axis=1)))
        jobs["tf-keras-vis Gradcam (softmax score, no model modifier)"] = lambda: gradcam(
            score, images, penultimate_layer=layer
        )
    except Exception as err:  # not installed, or broken against Keras 3
        progress(f"tf-keras-vis not compared: {type(err).__name__}: {err}")
    try:
        from tf_explain.core.grad_cam import GradCAM

        explainer = GradCAM()

        def explain() -> Any:
            return explainer.explain((images, None), model, class_index=0, layer_name=layer)

        explain()  # tf-explain reads model.output: a Keras 3 Sequential model has none
        jobs["tf-explain GradCAM (class 0)"] = explain
    except Exception as err:
        progress(f"tf-explain not compared: {type(err).__name__}: {str(err)[:120]}")
    return jobs


def notebook_rows(model: keras.Model, images: np.ndarray) -> list[Row]:
    import vizcallbacks as vc

    layer = _last_spatial(model)
    spatial = [la.output for la in model.layers if len(la.output.shape) == 4]
    sub_model = keras.Model(model.inputs, spatial)
    tape_cam = tape_grad_cam(model, layer)
    jobs: dict[str, Callable[[], Any]] = {
        "vc.grad_cam": lambda: vc.grad_cam(model, images),
        "plain tf.GradientTape Grad-CAM (Keras example; sub-model built once, eager)": (
            lambda: tape_cam(images)
        ),
        **_peers(model, images, layer),
        "vc.layer_activations (every layer)": lambda: vc.layer_activations(model, images),
        "a multi-output sub-model's predict (4-D layers, built once)": lambda: sub_model.predict(
            images, verbose=0
        ),
    }
    rows = []
    n = len(images)
    for name, job in jobs.items():
        walls, cpus = repeated_calls(job)
        progress(f"notebook: {name}: {1000 * min(walls):.1f} ms")
        what = f"6. fashion_cnn, {n} images, {name}, repeated call (median of 5)"
        rows += [
            measured(f"{what}: wall", [1000 * w for w in walls], "ms"),
            measured(f"{what}: CPU", [1000 * c for c in cpus], "ms"),
        ]
    return rows
