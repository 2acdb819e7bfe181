"""What the attribution methods share: the result, input checks, and the base of the methods that
attribute the score to input pixels (gradients, occlusion), one compiled batched call each.

Every map is float32 ``(N, H, W)`` at the input's resolution: ``heatmaps`` in [0, 1] (the
largest magnitude over channels, divided by each image's maximum) and, where the method has one,
``signed``, the attribution summed over channels in units of the class score (the logit before
the final softmax/sigmoid; for one sigmoid unit ``-logit`` explains class 0).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
from keras import ops

from vizcallbacks.compute.backend import compiled, input_gradient, runtime_errors
from vizcallbacks.compute.class_scores import ClassIndex, ClassScores
from vizcallbacks.compute.errors import view_failure
from vizcallbacks.compute.forward import record_forward
from vizcallbacks.compute.gradcam import GradCAMResult, input_image_shape
from vizcallbacks.compute.layers import all_layers, ensure_built
from vizcallbacks.compute.probe import check_probe, check_probe_fits_model

__all__ = [
    "BATCH_SIZE",
    "Attribution",
    "InputAttribution",
    "attribution_probe",
    "check_count",
    "check_number",
    "chosen_map",
    "chunked",
]

BATCH_SIZE = 256  # images per pass through the model when a method expands the probe batch


@dataclass(frozen=True)
class Attribution(GradCAMResult):
    """Grad-CAM's result plus ``signed``: float32 ``(N, H, W)`` in score units, or None for
    methods without a signed map (the CAMs)."""

    signed: np.ndarray | None = None


def chosen_map(result: Attribution, signed: bool) -> np.ndarray:
    """The signed map when asked for and the method has one, else the heatmaps."""
    return result.signed if signed and result.signed is not None else result.heatmaps


def attribution_probe(model: keras.Model, images: Any, what: str) -> np.ndarray:
    """``images`` checked as float32 ``(N, H, W, C)`` for a single-input ``model`` (built here)."""
    probe = check_probe(images)
    if getattr(probe, "inputs", None) is not None:
        raise ValueError(
            f"{what} explains models with one image input; received a probe with several "
            "inputs. Use grad_cam for models with several inputs."
        )
    ensure_built(model, probe.shape)
    check_probe_fits_model(probe, model)
    return probe


def check_count(name: str, value: object, minimum: int) -> int:
    """``value`` if it is an int ≥ ``minimum``, else an error naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer ≥ {minimum}. Received: {name}={value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be ≥ {minimum}. Received: {name}={value}")
    return int(value)


def check_number(name: str, value: object, minimum: float | None = None) -> float:
    """``value`` as a finite float (≥ ``minimum`` when given), else an error naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number. Received: {name}={value!r}")
    number = float(value)
    if not np.isfinite(number) or (minimum is not None and number < minimum):
        bound = f" ≥ {minimum:g}" if minimum is not None else ""
        raise ValueError(f"{name} must be a finite number{bound}. Received: {name}={value!r}")
    return number


def chunked(fn: Callable[..., Any], size: int, *tensors: Any) -> Any:
    """``fn(*tensors)`` computed ``size`` rows at a time (static shapes) and concatenated, so a
    method's expanded batch (samples, steps, patches, channels) never has to fit at once."""
    n = tensors[0].shape[0]
    if n is None or n <= size:
        return fn(*tensors)
    parts = [fn(*(t[i : i + size] for t in tensors)) for i in range(0, n, size)]
    return ops.concatenate(parts, axis=0)


class InputAttribution(ClassScores):
    """Base of the methods that attribute the class score to the input's pixels.

    Subclasses implement :meth:`attribute`. The call is compiled once per model (see
    ``backend.compiled``); weights are read fresh each call and the model is never changed.
    """

    what = "attribution"
    needs_gradient = True  # whether attribute() uses the gradient at the image itself

    def __init__(
        self,
        model: keras.Model,
        image_shape: Sequence[int] | None = None,
        output: str | int | None = None,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        first = [
            n for n, la in all_layers(model) if getattr(la, "data_format", "") == "channels_first"
        ]
        if first:
            raise ValueError(
                f"{self.what} explains channels_last images; layer {first[0]!r} is "
                "channels_first. Use grad_cam, grad_cam_plus_plus or layer_cam for this model."
            )
        shape = input_image_shape(model, image_shape, self.what)
        ensure_built(model, (1, *shape))
        recording = record_forward(model, ops.zeros((1, *shape), dtype="float32"))
        super().__init__(model, recording, output, self.what)
        self.image_shape = shape  # (H, W, C)
        self.batch_size = check_count("batch_size", batch_size, 1)
        # A partial, not the bound method: TensorFlow counts retracing per code object.
        self._function = compiled(model, functools.partial(self._run))

    def __call__(self, images: np.ndarray, class_index: ClassIndex = None) -> Attribution:
        """``images`` float32 ``(N, H, W, C)`` → heatmaps, signed maps and the classes."""
        return self.explain(images, class_index)

    def explain(self, images: np.ndarray, class_index: ClassIndex, *extra: Any) -> Attribution:
        """Run the compiled call; ``extra`` arrays (a baseline, noise) are passed to attribute()."""
        classes = ops.convert_to_tensor(self.class_indices(class_index, images.shape[0]))
        tensors = [ops.convert_to_tensor(np.asarray(e, dtype=np.float32)) for e in extra]
        try:
            out = self._function(
                ops.convert_to_tensor(np.asarray(images, dtype=np.float32)), classes, *tensors
            )
        except runtime_errors() as err:  # the traced graph failed while running
            raise view_failure(f"{self.what} of model {self.model.name!r}", err) from err
        out = {key: ops.convert_to_numpy(value) for key, value in out.items()}
        return Attribution(
            heatmaps=out["heatmaps"].astype(np.float32),
            class_index=out["class_index"].astype(np.int64),
            predicted=out["predicted"].astype(np.int64),
            probability=out["probability"].astype(np.float32),
            class_probability=out["class_probability"].astype(np.float32),
            signed=out["signed"].astype(np.float32),
        )

    def _run(self, x: Any, classes: Any, *extra: Any) -> dict[str, Any]:
        _, logits = self.forward(x)
        scores = self.scores(logits, classes)
        gradient = None
        if self.needs_gradient:
            gradient = input_gradient(lambda v: self.score_of(v, classes), x)
        target = scores["class_index"]
        signed, magnitude = self.attribute(x, target, logits, gradient, *extra)
        heat = ops.max(magnitude, axis=-1)
        heat = ops.divide_no_nan(heat, ops.max(heat, axis=(1, 2), keepdims=True))
        scores["heatmaps"] = ops.clip(heat, 0.0, 1.0)
        scores["signed"] = ops.sum(signed, axis=-1)
        return scores

    def score_of(self, x: Any, classes: Any) -> Any:
        """The summed class score of images ``x`` (``classes`` ``-1``: the predicted class)."""
        return self.scores(self.forward(x)[1], classes)["score"]

    def attribute(
        self,
        x: Any,
        target: Any,
        logits: Any,
        gradient: Any | None,
        *extra: Any,
    ) -> tuple[Any, Any]:
        """The signed attribution and its magnitude, both ``(N, H, W, C)``, for the classes
        ``target`` ``(N,)``; ``logits`` and ``gradient`` are those of the images themselves."""
        raise NotImplementedError

    def gradients(self, batch: Any, target: Any) -> Any:
        """d score / d input for an expanded ``batch`` ``(M, H, W, C)`` and classes ``(M,)``."""

        def part(images: Any, classes: Any) -> Any:
            return input_gradient(lambda v: self.class_logit(self.forward(v)[1], classes), images)

        return chunked(part, self.batch_size, batch, target)

    def class_scores_of(self, batch: Any, target: Any) -> Any:
        """The class score ``(M,)`` of an expanded ``batch`` for classes ``target``."""
        return chunked(
            lambda images, classes: self.class_logit(self.forward(images)[1], classes),
            self.batch_size,
            batch,
            target,
        )
