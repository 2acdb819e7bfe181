"""The one place that knows Keras' backend: compile a pass once per model, differentiate a score
with respect to a layer's output or an input, hand a pass's outputs to numpy, and tell this
process's rank.

TensorFlow traces a ``tf.function``; JAX jits a *stateless* pass (the variables' current values
are arguments, so training's updates are seen; a jitted closure over the variables would bake
them in as constants); PyTorch runs eagerly, under ``torch.no_grad()`` unless a gradient is taken.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import keras
import numpy as np

__all__ = [
    "UnsupportedBackendError",
    "backend",
    "compiled",
    "compiles",
    "eager_passes",
    "input_gradient",
    "layer_gradient",
    "output_arrays",
    "process_index",
    "runtime_errors",
    "value_and_gradients",
]

T = TypeVar("T")
Tap = Callable[[Any], Any]


class UnsupportedBackendError(NotImplementedError):
    """Keras' backend is none of those vizcallbacks knows (TensorFlow, JAX, PyTorch)."""


def backend() -> str:
    """Keras' backend: ``"tensorflow"``, ``"jax"`` or ``"torch"``."""
    return str(keras.backend.backend())


def process_index() -> int:
    """This process's rank in a multi-process run of JAX (``keras.distribution``) or PyTorch
    (``torch.distributed``); 0 alone and on TensorFlow, whose workers ``TF_CONFIG`` names."""
    name = backend()
    if name == "jax":
        import jax

        return int(jax.process_index())
    if name == "torch":
        import torch.distributed

        if torch.distributed.is_available() and torch.distributed.is_initialized():
            return int(torch.distributed.get_rank())
    return 0


def output_arrays(outputs: Sequence[Any]) -> list[np.ndarray]:
    """A compiled pass's fresh output tensors as float32 numpy arrays, without a copy where the
    backend allows it (TensorFlow and JAX on the CPU give read-only views; Keras'
    ``convert_to_numpy`` copies each one: 100 ms a step for ResNet50's 175 layers)."""
    if backend() in ("tensorflow", "jax"):
        return [np.asarray(x, dtype=np.float32) for x in outputs]
    return [np.asarray(keras.ops.convert_to_numpy(x), dtype=np.float32) for x in outputs]


def runtime_errors() -> tuple[type[Exception], ...]:
    """Errors a compiled pass raises while running (TensorFlow's graph errors), to restate."""
    if backend() == "tensorflow":
        import tensorflow as tf

        return (tf.errors.OpError,)
    return ()


_eager = threading.local()


@contextlib.contextmanager
def eager_passes() -> Iterator[None]:
    """Inside, on this thread, TensorFlow passes from :func:`compiled` run eagerly: one pass
    without its trace (ResNet50: 0.25 s of CPU eagerly against 1.5 s traced and run)."""
    before = getattr(_eager, "on", False)
    _eager.on = True
    try:
        yield
    finally:
        _eager.on = before


def compiles() -> bool:
    """Whether :func:`compiled` traces its passes and :func:`eager_passes` can skip the trace
    (TensorFlow; JAX compiles op by op when eager, PyTorch never compiles)."""
    return backend() == "tensorflow"


class _TracedOrEager:
    """A ``tf.function`` that runs its Python function eagerly inside :func:`eager_passes`; its
    other attributes (``experimental_get_tracing_count``...) are the ``tf.function``'s."""

    def __init__(self, function: Callable[..., Any], traced: Any) -> None:
        self._function = function
        self._traced = traced

    def __call__(self, *args: Any) -> Any:
        if getattr(_eager, "on", False):
            return self._function(*args)
        return self._traced(*args)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._traced, name)


def compiled(
    model: keras.Model, function: Callable[..., T], static_argnums: Sequence[int] = ()
) -> Callable[..., T]:
    """``function`` compiled once for ``model`` (``static_argnums``: hashable arguments, such as
    sizes, that select a trace); each call reads the model's variables as they are now.
    TensorFlow traces it on the first call made outside :func:`eager_passes`."""
    name = backend()
    if name == "tensorflow":
        import tensorflow as tf

        return _TracedOrEager(
            function, tf.function(function, reduce_retracing=True, autograph=False)
        )
    if name == "jax":
        import jax

        variables = list(model.variables)

        def stateless(values: list[Any], *args: Any) -> T:
            with keras.StatelessScope(state_mapping=list(zip(variables, values, strict=True))):
                return function(*args)

        jitted = jax.jit(stateless, static_argnums=tuple(i + 1 for i in static_argnums))
        return lambda *args: jitted([v.value for v in variables], *args)
    if name == "torch":
        import torch

        def eager(*args: Any) -> T:
            with torch.no_grad():
                return function(*args)

        return eager
    raise UnsupportedBackendError(f"vizcallbacks does not know Keras' backend {name!r}.")


def layer_gradient(run: Callable[[Tap], tuple[Any, T]]) -> tuple[Any, Any, T]:
    """``(maps, d score / d maps, aux)`` where ``run(tap)`` makes one forward pass that sends the
    layer's output ``maps`` through ``tap`` (and uses what it returns), giving ``(score, aux)``
    with ``score`` a scalar. The gradient is ``None`` when the score does not depend on ``maps``
    (TensorFlow, PyTorch; JAX gives zeros)."""
    name = backend()
    seen: list[Any] = []

    def keep(maps: Any) -> Any:
        seen.append(maps)
        return maps

    if name == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape(watch_accessed_variables=False) as tape:

            def watch(maps: Any) -> Any:
                tape.watch(maps)
                return keep(maps)

            score, aux = run(watch)
        return seen[0], tape.gradient(score, seen[0]), aux
    if name == "jax":
        import jax

        jax.eval_shape(lambda: run(keep)[0])  # the layer's output shape, no computation
        spec = seen.pop()
        shift = jax.numpy.zeros(spec.shape, spec.dtype)

        def score_of(shift: Any) -> tuple[Any, tuple[Any, T]]:
            score, aux = run(lambda maps: keep(maps) + shift)
            return score, (seen.pop(), aux)

        grads, (maps, aux) = jax.grad(score_of, has_aux=True)(shift)
        return maps, grads, aux
    import torch

    with torch.enable_grad():

        def leaf(maps: Any) -> Any:
            return keep(maps if maps.requires_grad else maps.detach().requires_grad_())

        score, aux = run(leaf)
        grads = torch.autograd.grad(score, seen[0], allow_unused=True)[0]
    return seen[0].detach(), grads, aux


def input_gradient(function: Callable[[Any], Any], x: Any) -> Any:
    """``d sum(function(x)) / dx``, the gradient with respect to an input tensor ``x``."""
    name = backend()
    if name == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(x)
            y = function(x)
        return tape.gradient(y, x)
    if name == "jax":
        import jax

        return jax.grad(lambda v: keras.ops.sum(function(v)))(x)
    import torch

    with torch.enable_grad():
        leaf = x.detach().requires_grad_()
        return torch.autograd.grad(keras.ops.sum(function(leaf)), leaf)[0]


def value_and_gradients(
    function: Callable[[list[Any]], Any], values: list[Any]
) -> tuple[Any, list]:
    """``(function(values), d function(values) / d values)`` for a scalar ``function`` of a list of
    tensors (weights' values); a gradient is ``None`` (TensorFlow, PyTorch) or zeros (JAX) where
    the scalar does not depend on that tensor."""
    name = backend()
    if name == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(values)
            value = function(values)
        return value, tape.gradient(value, values)
    if name == "jax":
        import jax

        return jax.value_and_grad(function)(values)
    import torch

    with torch.enable_grad():
        leaves = [v.detach().requires_grad_() for v in values]
        value = function(leaves)
        grads = torch.autograd.grad(value, leaves, allow_unused=True)
    return value.detach(), list(grads)
