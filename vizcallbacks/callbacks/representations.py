"""RepresentationLogger: which layers have settled, and which compute the same thing (CKA)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from vizcallbacks._version import __version__
from vizcallbacks.arrays import check_positive_int
from vizcallbacks.callbacks.activations import channels_first_layers
from vizcallbacks.callbacks.base import VisualizationCallback
from vizcallbacks.compute.cka import cross_cka, probe_hash
from vizcallbacks.compute.layers import LayerSelection, select_layers
from vizcallbacks.compute.representations import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_MAX_LAYER_BYTES,
    GramSet,
    LayerGrams,
    check_probe_set,
)
from vizcallbacks.records import Params, Record
from vizcallbacks.render.colormap import DEFAULT_CMAP, check_cmap
from vizcallbacks.views.representations import (
    GramArchive,
    convergence_records,
    drift_records,
    gram_archive_record,
    layer_matrix_records,
    reduced_caption,
)

__all__ = ["MAX_HISTORY", "RepresentationLogger"]

MAX_HISTORY = 64  # logged steps kept for the convergence picture (every other one dropped beyond)


def _pairwise(units: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Each layer's CKA with the same layer in ``others`` (unit centred Grams, same order)."""
    values = np.einsum("lij,lij->l", units, others.astype(np.float64, copy=False))
    dead = ~units.reshape(len(units), -1).any(axis=1) | ~others.reshape(len(units), -1).any(axis=1)
    return np.where(dead, np.nan, np.clip(values, -1.0, 1.0))


def _upper_triangle(units: np.ndarray) -> np.ndarray:
    """float16 ``(L, n(n+1)/2)``: the upper triangles of symmetric ``(L, n, n)`` unit Grams, a
    quarter of their float64 memory, kept for every logged step."""
    rows, cols = np.triu_indices(units.shape[-1])
    return units[:, rows, cols].astype(np.float16)


def _symmetric(triangles: np.ndarray, n: int) -> np.ndarray:
    """The ``(L, n, n)`` symmetric matrices whose upper triangles are ``triangles``."""
    rows, cols = np.triu_indices(n)
    full = np.empty((len(triangles), n, n), np.float32)
    full[:, rows, cols] = triangles
    full[:, cols, rows] = triangles
    return full


def _checked_steps(steps: Sequence[int]) -> frozenset[int]:
    if isinstance(steps, (str, bytes)) or not all(
        isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in steps
    ):
        raise ValueError(
            f"gram_steps must be a sequence of steps (integers ≥ 0; step k follows the k-th "
            f"epoch). Received: {steps!r}"
        )
    return frozenset(steps)


class RepresentationLogger(VisualizationCallback):
    """Log how similar the layers' representations of a probe set are, over training.

    Per logged step: ``cka/layers``, the layer x layer linear CKA matrix (names on both axes,
    a colour bar), and per layer ``cka_to_initial/<layer>`` (its CKA with itself at step 0) and
    ``cka_to_previous/<layer>``. At train end: ``cka/convergence`` (layers x steps, each cell
    the layer's CKA with its final representation: which layers settled first) and the final
    step's Gram matrices as ``files/cka/grams_step_<N>.npz`` with the probe set's hash, which
    ``python -m vizcallbacks compare A B --cka`` reads.

    Memory is bounded: the probe set goes through the model ``batch_size`` examples at a time,
    and a layer whose float32 features for the whole set pass ``max_layer_bytes`` is
    average-pooled over its spatial axes to at most 8 x 8 first (named in the picture's caption
    and in the run's options as ``layers_reduced``).

    Args:
        images: the probe set ``(n, H, W, C)``, at least 16 examples (256 is typical),
            preprocessed like the training data.
        writers: where to log, e.g. ``[vc.TensorBoardWriter("logs")]``.
        layers: layer names, nested paths or indices; ``None`` takes every layer.
        every_n_epochs: log after every n-th epoch (and after the last).
        debiased: use the unbiased HSIC estimator (Song et al. 2012), as Nguyen et al. do.
        gram_steps: steps whose Gram matrices are kept too (the final step's always are).
        batch_size: probe examples per forward pass.
        max_layer_bytes: the per-layer memory budget above which a layer is pooled.
        cmap: matplotlib colormap name for the pictures.
    """

    def __init__(
        self,
        images: Any,
        writers: Any,
        layers: LayerSelection = None,
        every_n_epochs: int = 1,
        debiased: bool = False,
        gram_steps: Sequence[int] = (),
        batch_size: int = DEFAULT_BATCH_SIZE,
        max_layer_bytes: int = DEFAULT_MAX_LAYER_BYTES,
        cmap: str = DEFAULT_CMAP,
    ) -> None:
        super().__init__(writers, every_n_epochs)
        self.images = check_probe_set(images)
        self.layers = layers
        if not isinstance(debiased, bool):
            raise TypeError(f"debiased must be True or False. Received: {debiased!r}")
        self.debiased = debiased
        self.gram_steps = _checked_steps(gram_steps)
        self.batch_size = check_positive_int("batch_size", batch_size)
        self.max_layer_bytes = check_positive_int("max_layer_bytes", max_layer_bytes)
        self.cmap = check_cmap(cmap)
        self.probe_hash = probe_hash(self.images)
        self._grams: LayerGrams | None = None
        self._trial: GramSet | None = None
        self._reset()

    def _reset(self) -> None:
        self._first_units: np.ndarray | None = None
        self._previous: np.ndarray | None = None
        self._history: list[tuple[int, np.ndarray]] = []  # (step, _upper_triangle(units))
        self._last: tuple[int, GramSet] | None = None

    def setup(self) -> None:
        self.images = check_probe_set(self.images, self.model)
        refs = select_layers(self.model, self.layers)
        channels_first = frozenset(channels_first_layers(self.model, {id(r.layer) for r in refs}))
        self._grams = LayerGrams(
            self.model, self.layers, self.batch_size, self.max_layer_bytes, channels_first
        )
        self._trial = self.compute()  # fails here, before training, rather than later
        if len(self._trial.layers) < 1:
            raise ValueError(
                "RepresentationLogger found no layer with a tensor output among the layers asked "
                "for; pass layers= naming layers of the model, or leave it out."
            )

    def claims(self) -> set[tuple[str, ...]]:
        assert self._trial is not None
        keys: set[tuple[str, ...]] = {("cka", "layers"), ("cka", "convergence")}
        for name in self._trial.layers:
            keys |= {("cka_to_initial", name), ("cka_to_previous", name)}
        return keys

    def shared_claims(self) -> set[tuple[str, ...]]:
        return {("vizcallbacks", "params")}

    def opening_view(self, won: set[tuple[str, ...]]) -> list[Record]:
        """The options, unless another logger on the writer has logged them."""
        return [Params(self.run_params())] if ("vizcallbacks", "params") in won else []

    def run_params(self) -> dict[str, Any]:
        """What this logger was asked to compute, logged once per run."""
        assert self._trial is not None
        return {
            "vizcallbacks_version": __version__,
            "layers_logged": list(self._trial.layers),
            "layers_reduced": list(self._trial.reduced),
            "probe_shape": list(self.images.shape),
            "probe_hash": self.probe_hash,
            "every_n_epochs": self.every_n_epochs,
            "debiased": self.debiased,
            "batch_size": self.batch_size,
            "max_layer_bytes": self.max_layer_bytes,
            "cmap": self.cmap,
        }

    def compute(self) -> GramSet:
        """Every logged layer's Gram matrix over the probe set, weights as they are now."""
        assert self._grams is not None
        return self._grams(self.images)

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        if self._last_step < 0:
            self._reset()  # a new log: step 0 is this fit's first snapshot
        super().on_train_begin(logs)

    def view(self, payload: GramSet, step: int) -> list[Record]:
        units = payload.units(self.debiased)
        layers = payload.layers
        matrix = cross_cka(units, units)
        if self._first_units is None:
            self._first_units = units
        records = layer_matrix_records(
            layers, matrix, step, reduced_caption(payload.reduced, self.debiased), self.cmap
        )
        records += drift_records(
            layers,
            _pairwise(units, self._first_units),
            None if self._previous is None else _pairwise(units, self._previous),
        )
        self._previous = units
        self._history.append((step, _upper_triangle(units)))
        if len(self._history) > MAX_HISTORY:
            self._history = self._history[:1] + self._history[2::2]
        self._last = (step, payload)
        if step in self.gram_steps:
            records.append(self._archive(step, payload))
        return records

    def _archive(self, step: int, grams: GramSet) -> Record:
        archive = GramArchive(grams.layers, grams.grams, self.probe_hash, step, grams.reduced)
        return gram_archive_record(archive)

    def convergence(self) -> tuple[list[int], np.ndarray]:
        """The steps kept and ``(layers, steps)``: each layer's CKA at each step with its
        representation at the last logged step (float16 history: about 1e-3)."""
        assert self._previous is not None
        final, n = self._previous, self._previous.shape[-1]
        columns = [_pairwise(final, _symmetric(t, n)) for _, t in self._history]
        return [s for s, _ in self._history], np.stack(columns, axis=1)

    def summary_view(self) -> list[Record]:
        """The convergence picture and the final step's Gram archive."""
        if self._last is None or self._previous is None:
            return []
        step, grams = self._last
        steps, matrix = self.convergence()
        records = convergence_records(grams.layers, steps, matrix, self.cmap)
        if step not in self.gram_steps:
            records.append(self._archive(step, grams))
        return records
