"""The one pipeline of every attribution method, and the base of those that attribute the score
to the input (gradients, occlusion).

An :class:`Explainer` reads the explained output's class scores, runs one compiled batched call
per probe (weights read fresh, the model never changed) and returns an ``Attribution``. Input
methods give maps ``(N, *spatial)``: ``heatmaps`` in [0, 1] (the largest magnitude over channels,
divided by each map's maximum) and ``signed``, summed over channels, in units of the class score
(the logit before the final softmax/sigmoid; for one sigmoid unit ``-logit`` explains class 0).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from vizcallbacks.compute.attribution.explained_layer import sample_shape
from vizcallbacks.compute.attribution.result import Attribution, attribution_from
from vizcallbacks.compute.attribution.scores import ClassIndex, ClassScores
from vizcallbacks.compute.backend import compiled, input_gradient, runtime_errors
from vizcallbacks.compute.errors import view_failure
from vizcallbacks.compute.forward import Recording, model_inputs, record_forward
from vizcallbacks.compute.layers import all_layers, ensure_built

__all__ = [
    "BATCH_SIZE",
    "Explainer",
    "InputAttribution",
    "check_count",
    "check_number",
    "chunked",
    "normalized",
    "several_inputs_error",
]

BATCH_SIZE = 256  # samples per pass through the model when a method expands the probe batch


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


def normalized(heat: Any) -> Any:
    """Each map of ``heat`` ``(N, *spatial)`` divided by its maximum, clipped to [0, 1]."""
    axes = tuple(range(1, len(heat.shape)))
    return ops.clip(ops.divide_no_nan(heat, ops.max(heat, axis=axes, keepdims=True)), 0.0, 1.0)


class Explainer(ClassScores):
    """Base of every method: the explained output's scores and one compiled call per probe.

    Subclasses implement ``_run(inputs, size, classes, *extra)``, returning the scores of
    :meth:`ClassScores.scores` with ``heatmaps`` (and ``signed`` where the method has one);
    ``size`` is the input's spatial size, static so that a CAM is resized to it.
    """

    what = "attribution"
    channels_first = False  # whether the probe is laid out (N, C, ...)

    def __init__(self, model: keras.Model, recording: Recording, output: str | int | None) -> None:
        super().__init__(model, recording, output, self.what)
        # A partial, not the bound method: TensorFlow counts retracing per code object, so one
        # instance per call (a notebook loop) would warn about retracing.
        self._function = compiled(model, functools.partial(self._run), static_argnums=(1,))

    def __call__(self, probe: np.ndarray, class_index: ClassIndex = None) -> Attribution:
        """``probe`` (batch axis first; several inputs: a ``ProbeInputs``) → the maps."""
        return self.explain(probe, class_index)

    def explain(self, probe: np.ndarray, class_index: ClassIndex, *extra: Any) -> Attribution:
        """Run the compiled call; ``extra`` arrays (a baseline, noise) are passed to ``_run``."""
        classes = ops.convert_to_tensor(self.class_indices(class_index, probe.shape[0]))
        spatial = probe.shape[2:] if self.channels_first else probe.shape[1:-1]
        tensors = [ops.convert_to_tensor(np.asarray(e, dtype=np.float32)) for e in extra]
        try:
            out = self._function(
                model_inputs(self.model, probe), tuple(int(d) for d in spatial), classes, *tensors
            )
        except runtime_errors() as err:  # the traced graph failed while running
            raise view_failure(self.subject, err) from err
        return attribution_from(out)

    @property
    def subject(self) -> str:
        """What a failure is said to be about."""
        return f"{self.what} of model {self.model.name!r}"

    def _run(self, inputs: Any, size: tuple[int, ...], classes: Any, *extra: Any) -> dict[str, Any]:
        raise NotImplementedError


class InputAttribution(Explainer):
    """Base of the methods that attribute the class score to the input's values; subclasses
    implement :meth:`attribute`. Models with one channels_last input."""

    needs_gradient = True  # whether attribute() uses the gradient at the probe itself

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
                f"{self.what} explains channels_last inputs; layer {first[0]!r} is "
                "channels_first. Use grad_cam, grad_cam_plus_plus or layer_cam for this model."
            )
        shape = sample_shape(model, image_shape, self.what)
        ensure_built(model, (1, *shape))
        if len(getattr(model, "inputs", None) or ()) > 1:
            raise several_inputs_error(self.what)
        self.image_shape = shape  # one sample, channels last
        self.batch_size = check_count("batch_size", batch_size, 1)
        recording = record_forward(model, ops.zeros((1, *shape), dtype="float32"))
        super().__init__(model, recording, output)

    def _run(self, x: Any, size: tuple[int, ...], classes: Any, *extra: Any) -> dict[str, Any]:
        _, logits = self.forward(x)
        scores = self.scores(logits, classes)
        gradient = None
        if self.needs_gradient:
            gradient = input_gradient(lambda v: self.score_of(v, classes), x)
        signed, magnitude = self.attribute(x, scores["class_index"], logits, gradient, *extra)
        scores["heatmaps"] = normalized(ops.max(magnitude, axis=-1))
        scores["signed"] = ops.sum(signed, axis=-1)
        return scores

    def score_of(self, x: Any, classes: Any) -> Any:
        """The summed class score of inputs ``x`` (``classes`` ``-1``: the predicted class)."""
        return self.scores(self.forward(x)[1], classes)["score"]

    def attribute(
        self, x: Any, target: Any, logits: Any, gradient: Any | None, *extra: Any
    ) -> tuple[Any, Any]:
        """The signed attribution and its magnitude, both shaped like ``x``, for the classes
        ``target`` ``(N,)``; ``logits`` and ``gradient`` are those of ``x`` itself."""
        raise NotImplementedError

    def gradients(self, batch: Any, target: Any) -> Any:
        """d score / d input for an expanded ``batch`` ``(M, ...)`` and classes ``(M,)``."""

        def part(values: Any, classes: Any) -> Any:
            return input_gradient(lambda v: self.class_logit(self.forward(v)[1], classes), values)

        return chunked(part, self.batch_size, batch, target)

    def class_scores_of(self, batch: Any, target: Any) -> Any:
        """The class score ``(M,)`` of an expanded ``batch`` for classes ``target``."""
        return chunked(
            lambda values, classes: self.class_logit(self.forward(values)[1], classes),
            self.batch_size,
            batch,
            target,
        )


def several_inputs_error(what: str) -> ValueError:
    """The refusal of a probe with several inputs by a method that needs one image input."""
    return ValueError(
        f"{what} explains models with one image input; received a probe with several inputs. "
        "Use grad_cam, grad_cam_plus_plus or layer_cam for models with several inputs."
    )
