"""One forward pass of the model itself that records the outputs of its layers, call by call.

``keras.Model(model.inputs, layer.output)`` cannot reach a nested model's layers, a subclassed
model's or the second call of a shared layer. Instead, inside the trace only, each layer's
``call`` is replaced by an instance attribute that calls the original and keeps its output;
``model(x, training=False)`` then runs as Keras runs it (tensor arithmetic, ``training``,
dtype policies) and the attributes are deleted afterwards, leaving the model as it was.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np

from vizcallbacks.compute.backend import Tap, compiled, output_arrays, runtime_errors
from vizcallbacks.compute.errors import view_failure
from vizcallbacks.compute.keras_seams import restore_call, swap_call
from vizcallbacks.compute.layers import LayerRef, all_layers
from vizcallbacks.compute.probe import ProbeInputs, probe_inputs

__all__ = ["ActivationExtractor", "Recording", "model_inputs", "record_forward"]

_SQUASHING = ("softmax", "sigmoid")

# One recording at a time per process: the wrappers live on shared layer objects, and a pass may
# be traced on a logger's background thread while another is recorded on the training thread.
_recording_lock = threading.RLock()


def _pre_activation(layer: keras.layers.Layer, inputs: Any) -> tuple[Any, str] | None:
    """The logits of a softmax/sigmoid layer and the squashing skipped, or None if not one."""
    if not hasattr(inputs, "shape"):
        return None
    if isinstance(layer, keras.layers.Softmax):  # keras.layers.Softmax has no .activation
        if layer.axis in (-1, len(inputs.shape) - 1):
            return inputs, "softmax"
        return None
    activation = getattr(layer, "activation", None)
    name = getattr(activation, "__name__", "")
    if name not in _SQUASHING:
        return None
    if isinstance(layer, keras.layers.Activation):
        return inputs, name
    if isinstance(layer, keras.layers.Dense):
        logits = keras.ops.matmul(inputs, layer.kernel)
        return (logits + layer.bias if layer.use_bias else logits), name
    return None


@dataclass
class Recording:
    """What one recorded pass gives: the model's outputs, each layer's outputs in call order
    (``calls[id(layer)]``), the order of first calls, and the logits of squashing layers."""

    outputs: Any = None
    calls: dict[int, list[Any]] = field(default_factory=dict)
    order: list[int] = field(default_factory=list)
    pre_activations: dict[int, list[tuple[Any, str] | None]] = field(default_factory=dict)

    def logits(self, output: Any) -> tuple[Any, str | None]:
        """``output`` before its final softmax/sigmoid, and which one was skipped (else None)."""
        for key in reversed(self.order):  # a container shares its last layer's output: skip it
            for value, pre in zip(self.calls[key], self.pre_activations.get(key, []), strict=False):
                if value is output and pre is not None:
                    return pre
        return output, None


class _Recorder:
    """Installs and removes the recording wrappers; names the layer at fault on failure."""

    def __init__(
        self, model: keras.layers.Layer, recording: Recording, taps: dict[int, Tap] | None = None
    ) -> None:
        self.model = model
        self.recording = recording
        self.taps = dict(taps or {})
        self.layers = all_layers(model)
        self.fault: tuple[str, keras.layers.Layer] | None = None
        self.saved: list[tuple[keras.layers.Layer, object]] = []

    def wrap(self, path: str, layer: keras.layers.Layer) -> Callable[..., Any]:
        original = layer.call
        calls = self.recording.calls
        order = self.recording.order
        pre = self.recording.pre_activations
        recording_thread = threading.get_ident()

        def call(*args: Any, **kwargs: Any) -> Any:
            if threading.get_ident() != recording_thread:  # training, say, tracing its step
                return original(*args, **kwargs)
            try:
                out = original(*args, **kwargs)
                if id(layer) not in calls and id(layer) in self.taps:
                    out = self.taps[id(layer)](out)
                first = args[0] if args else next(iter(kwargs.values()), None)
                pre.setdefault(id(layer), []).append(_pre_activation(layer, first))
            except Exception:
                if self.fault is None:  # the innermost layer's handler runs first
                    self.fault = (path, layer)
                raise
            if id(layer) not in calls:
                order.append(id(layer))
            calls.setdefault(id(layer), []).append(out)
            return out

        return call

    def __enter__(self) -> _Recorder:
        for path, layer in self.layers:
            self.saved.append((layer, swap_call(layer, self.wrap(path, layer))))
        return self

    def __exit__(self, *exc: object) -> None:
        for layer, before in reversed(self.saved):
            restore_call(layer, before)
        self.saved.clear()

    def failure(self, err: Exception) -> Exception:
        """``err`` restated naming the layer at fault: ValueError/TypeError stay what they are
        (the input does not fit that layer), anything else becomes a ViewFailure."""
        path, layer = self.fault if self.fault is not None else (self.model.name, self.model)
        where = f"layer {path!r} ({type(layer).__name__})"
        if isinstance(err, (ValueError, TypeError)):
            kind = ValueError if isinstance(err, ValueError) else TypeError
            return kind(f"The probe could not go through {where}: {err}")
        return view_failure(where, err)


def record_forward(
    model: keras.layers.Layer, inputs: Any, taps: dict[int, Tap] | None = None
) -> Recording:
    """Run ``model(inputs, training=False)`` once, recording every layer's output per call;
    ``taps[id(layer)]`` maps that layer's first output before the pass goes on (for gradients).

    Raises ValueError/TypeError naming the layer at fault when the inputs do not fit it, and
    :class:`~vizcallbacks.compute.errors.ViewFailure` for anything else.
    """
    recording = Recording()
    recorder = _Recorder(model, recording, taps)
    # Inside an outer scope a layer may be named ">c1" or "-c1" (TensorFlow refuses those as
    # root scope names, and a traced function has no other scope around it).
    try:
        with _recording_lock, recorder, keras.name_scope("vizcallbacks"):
            recording.outputs = model(inputs, training=False)
    except Exception as err:
        raise recorder.failure(err) from err
    return recording


def model_inputs(model: keras.layers.Layer, probe: Any) -> Any:
    """The probe as backend tensors for ``model``: one float32 tensor, or its inputs' structure."""
    structure = probe_inputs(probe)
    if isinstance(structure, Mapping):
        return {name: _tensor(value) for name, value in structure.items()}
    if isinstance(structure, (tuple, list)):
        return [_tensor(value) for value in structure]
    return keras.ops.convert_to_tensor(structure, dtype="float32")


def _tensor(value: np.ndarray) -> Any:
    if np.issubdtype(value.dtype, np.floating):
        return keras.ops.convert_to_tensor(value, dtype="float32")
    return keras.ops.convert_to_tensor(value)


class ActivationExtractor:
    """Outputs of the chosen layers for a probe, from one compiled forward pass of the model.

    Built once per training run; the pass is compiled on the first call (see
    :func:`~vizcallbacks.compute.backend.compiled`) and reused for every later batch of the same
    shape, so weights are read fresh but nothing is rebuilt. A
    layer called twice (shared weights) gives ``name`` and ``name_2``: after the first call,
    ``refs`` holds one entry per recorded call.
    """

    def __init__(self, model: keras.Model, refs: list[LayerRef]) -> None:
        self.model = model
        self.refs = list(refs)
        self._requested = list(refs)

        def forward(inputs: Any) -> dict[str, Any]:
            calls = record_forward(model, inputs).calls
            return {
                f"{i}/{k}": value
                for i, ref in enumerate(self._requested)
                for k, value in enumerate(calls.get(id(ref.layer), []))
                if keras.ops.is_tensor(value)
            }

        self._forward = compiled(model, forward)

    def __call__(self, images: np.ndarray | ProbeInputs) -> dict[str, np.ndarray]:
        """A probe ``(N, H, W, C)`` (or a multi-input one) → ``{layer name: float32 (N, ...)}``."""
        try:
            outputs = self._forward(model_inputs(self.model, images))
        except runtime_errors() as err:  # the traced graph failed while running
            raise view_failure(f"model {self.model.name!r}", err) from err
        self.refs = self._name_calls(outputs)
        keys = sorted(outputs, key=_call_key)
        arrays = output_arrays([outputs[key] for key in keys])
        return {ref.name: array for ref, array in zip(self.refs, arrays, strict=True)}

    def _name_calls(self, outputs: Mapping[str, Any]) -> list[LayerRef]:
        """One ref per recorded call, in forward order: ``name``, then ``name_2``, ``name_3``."""
        used = {ref.name for ref in self._requested}
        refs: list[LayerRef] = []
        for key in sorted(outputs, key=_call_key):
            i, k = _call_key(key)
            ref = self._requested[i]
            if k == 0:
                refs.append(ref)
                continue
            n, name = k + 1, f"{ref.name}_{k + 1}"
            while name in used:
                n += 1
                name = f"{ref.name}_{n}"
            used.add(name)
            refs.append(LayerRef((*ref.path[:-1], name.rsplit("/", 1)[-1]), ref.layer, name))
        return refs


def _call_key(key: str) -> tuple[int, int]:
    i, k = key.split("/")
    return int(i), int(k)
